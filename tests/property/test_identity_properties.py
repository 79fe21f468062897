"""Invariants of identity stitching: the persons and refusals depend on the set of events, never
on their arrival order; replays change nothing; the guards always hold; and the records sent
along the way turn each state into the next."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.identity_rules import IdentityRules
from stream_processors.identity.core.graph import IdentityGraph
from stream_processors.identity.core.records import RefusalRecord, Resolution, person_id

T0 = datetime(2025, 3, 1, tzinfo=UTC)
VALUES = {
    "customer_id": ("c1", "c2", "c3"),
    "loyalty_id": ("L1",),
    "email_hash": ("h1", "h2"),
    "phone_hash": ("p1",),
    "device_id": ("d1", "d2", "d3"),
    "anonymous_id": ("a1", "a2", "a3", "a4", "a5"),
}
JUNK = ("null", " NULL ", '"undefined"', "0", "Guest", "[object Object]", "NaN", "test-7")
RULE_SETS = (
    IdentityRules(deny_patterns=(r"test-\d+",)),
    IdentityRules(
        deny_patterns=(r"test-\d+",), caps={"device_id": 1, "anonymous_id": 2}, max_identifiers=4
    ),
    IdentityRules(
        deny_patterns=(r"test-\d+",),
        caps={"customer_id": 2},
        allow_customer_id_merge=True,
        priorities=(
            "device_id",
            "customer_id",
            "anonymous_id",
            "loyalty_id",
            "email_hash",
            "phone_hash",
        ),
    ),
)


@dataclass(frozen=True)
class Event:
    identifiers: dict[str, str]
    minutes: int
    event_id: str

    def observe(self, graph: IdentityGraph) -> Resolution:
        return graph.observe(self.identifiers, T0 + timedelta(minutes=self.minutes), self.event_id)


@st.composite
def identities(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(st.sampled_from(tuple(VALUES)), min_size=1, max_size=4, unique=True))
    junk = [draw(st.integers(0, 9)) == 0 for _ in names]
    return {
        name: draw(st.sampled_from(JUNK if bad else VALUES[name]))
        for name, bad in zip(names, junk, strict=True)
    }


@st.composite
def event_lists(draw: st.DrawFn) -> list[Event]:
    count = draw(st.integers(1, 24))
    # Event ids are not in arrival order, and times repeat, so ties are decided by id.
    ids = draw(st.lists(st.integers(0, 999), min_size=count, max_size=count, unique=True))
    return [Event(draw(identities()), draw(st.integers(0, 12)), f"e{n:03d}") for n in ids]


rules_sets = st.sampled_from(RULE_SETS)


def run(events: Iterable[Event], rules: IdentityRules) -> tuple[IdentityGraph, list[Resolution]]:
    graph = IdentityGraph(rules)
    return graph, [event.observe(graph) for event in events]


def outcome(graph: IdentityGraph) -> tuple[dict[str, list[str]], list[RefusalRecord]]:
    return graph.persons(), graph.refusals()


@settings(max_examples=300, deadline=None)
@given(events=event_lists(), rules=rules_sets, data=st.data())
def test_persons_and_refusals_do_not_depend_on_arrival_order(
    events: list[Event], rules: IdentityRules, data: st.DataObject
) -> None:
    expected = outcome(run(events, rules)[0])
    shuffled = data.draw(st.permutations(events), label="shuffled")
    assert outcome(run(shuffled, rules)[0]) == expected
    assert outcome(run(reversed(events), rules)[0]) == expected
    assert expected[0] == oracle(events, rules)


@settings(max_examples=200, deadline=None)
@given(events=event_lists(), rules=rules_sets, data=st.data())
def test_replaying_events_sends_no_new_record_and_changes_nothing(
    events: list[Event], rules: IdentityRules, data: st.DataObject
) -> None:
    graph, first = run(events, rules)
    before, snapshot = outcome(graph), graph.snapshot()
    replayed = data.draw(st.permutations(events), label="replayed")
    again = [event.observe(graph) for event in replayed]
    assert outcome(graph) == before and graph.snapshot() == snapshot
    assert all(r.merges == () and r.moves == () for r in again)
    # Only the per-event junk refusals repeat, identical to the first time.
    denied = {r for res in first for r in res.refusals if r.rule == "denylist"}
    assert {r for res in again for r in res.refusals} == denied
    for event, result in zip(replayed, again, strict=True):
        anchor = next(iter(sorted_keys(event, rules)), None)
        assert result.person_id == (graph.person_of(anchor) if anchor else None)


@settings(max_examples=300, deadline=None)
@given(events=event_lists(), rules=rules_sets, data=st.data())
def test_guards_hold_after_every_event(
    events: list[Event], rules: IdentityRules, data: st.DataObject
) -> None:
    graph = IdentityGraph(rules)
    for event in data.draw(st.permutations(events), label="arrival"):
        event.observe(graph)
        for keys in graph.persons().values():
            counts = Counter(key.partition(":")[0] for key in keys)
            if not rules.allow_customer_id_merge:
                assert counts["customer_id"] <= 1, keys
            assert all(counts[t] <= cap for t, cap in rules.caps.items()), keys
            assert rules.max_identifiers is None or len(keys) <= rules.max_identifiers
            assert not any(rules.junk_reason(key.partition(":")[2]) for key in keys)


@settings(max_examples=300, deadline=None)
@given(events=event_lists(), rules=rules_sets, data=st.data())
def test_records_turn_each_state_into_the_next(
    events: list[Event], rules: IdentityRules, data: st.DataObject
) -> None:
    """A consumer that follows the records sees the graph's persons and refusals."""
    graph = IdentityGraph(rules)
    refusals: dict[str, RefusalRecord] = {}
    for event in data.draw(st.permutations(events), label="arrival"):
        ids = dict(graph.snapshot()["ids"])
        for key in sorted_keys(event, rules):
            ids.setdefault(key, person_id(key))
        result = event.observe(graph)
        for merge in result.merges:
            olds = set(merge.old_person_ids)
            ids.update({key: merge.person_id for key, pid in ids.items() if pid in olds})
        for move in result.moves:
            ids.update(dict.fromkeys(move.identifiers, move.to_person_id))
        assert ids == graph.snapshot()["ids"]
        for refusal in result.refusals:
            if refusal.rule == "denylist":
                continue
            if refusal.retracted:
                del refusals[refusal.record_id]
            else:
                refusals[refusal.record_id] = refusal
        assert sorted(refusals.values(), key=lambda r: (r.identifiers, r.event_id)) == (
            graph.refusals()
        )


@settings(max_examples=200, deadline=None)
@given(events=event_lists(), rules=rules_sets)
def test_denylisted_values_never_link_anything(events: list[Event], rules: IdentityRules) -> None:
    graph, results = run(events, rules)
    for event, result in zip(events, results, strict=True):
        junk = sorted(f"{k}:{v}" for k, v in event.identifiers.items() if rules.junk_reason(v))
        denied = [r.identifiers for r in result.refusals if r.rule == "denylist"]
        assert denied == ([tuple(junk)] if junk else [])
        assert all(graph.person_of(key) is None for key in junk)
    linked = {key for r in graph.refusals() for key in r.identifiers}
    assert not any(rules.junk_reason(key.partition(":")[2]) for key in linked)


# -- an independent, naive model of the same rules -------------------------------------------


def sorted_keys(event: Event, rules: IdentityRules) -> list[str]:
    """The event's usable identifier keys, highest priority first."""
    rank = rules.rank()
    items = event.identifiers.items()
    usable = [(rank[k], f"{k}:{v}") for k, v in items if not rules.junk_reason(v)]
    return [key for _, key in sorted(usable)]


def oracle(events: list[Event], rules: IdentityRules) -> dict[str, list[str]]:
    """Persons by brute force: all star links, in (time, event id, priority) order, each joining
    two sets of identifiers unless a guard refuses."""
    rank = rules.rank()
    links: list[tuple[int, str, int, str, str]] = []
    nodes: set[str] = set()
    for event in events:
        keys = sorted_keys(event, rules)
        nodes.update(keys)
        links += [
            (event.minutes, event.event_id, rank[v.partition(":")[0]], v, keys[0]) for v in keys[1:]
        ]
    person = {key: frozenset({key}) for key in nodes}
    for *_, v, u in sorted(links):
        a, b = person[u], person[v]
        if a is b or refused(a, b, rules):
            continue
        for key in a | b:
            person[key] = a | b
    out: dict[str, list[str]] = {}
    for members in set(person.values()):
        best = min(members, key=lambda key: (rank[key.partition(":")[0]], key))
        out[person_id(best)] = sorted(members)
    return dict(sorted(out.items()))


def refused(a: frozenset[str], b: frozenset[str], rules: IdentityRules) -> bool:
    counts = Counter(key.partition(":")[0] for key in a | b)
    types = [Counter(key.partition(":")[0] for key in side) for side in (a, b)]
    if not rules.allow_customer_id_merge and all(c["customer_id"] for c in types):
        return True
    if any(counts[t] > cap for t, cap in rules.caps.items()):
        return True
    return rules.max_identifiers is not None and len(a | b) > rules.max_identifiers
