"""The identity stage's protocol, without Kafka: routing workers, a lagging map replica and the
one authority give the same persons as one graph that saw every event, whatever the timing.

What these check is what docs/stages/identity.md claims: (1) what routing workers send the
authority decides the same graph as all events would; (2) resolving each event's stamped person
through the latest override of its routing identifier (the `touchpoints_latest` view) gives its
person in the final graph, however stale the replica was when it was routed; (3) the map
updates, applied in order, are exactly the authority's remapped identifiers; (4) the persisted
links rebuild the same authority.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.identity_rules import IdentityRules
from stream_processors.identity.core.authority import (
    Authority,
    MapUpdate,
    link_from,
    link_key,
    link_record,
)
from stream_processors.identity.core.graph import IdentityGraph
from stream_processors.identity.core.records import person_id
from stream_processors.identity.core.routing import Router

from .test_identity_properties import RULE_SETS, T0, VALUES, Event, event_lists


def joined(graph: IdentityGraph) -> dict[str, list[str]]:
    """The persons of two or more identifiers."""
    return {pid: keys for pid, keys in graph.persons().items() if len(keys) > 1}


def must_send(router: Router, event: Event) -> bool:
    """What the routing stage does: send junk, and links this worker has not sent earlier."""
    route = router.route(event.identifiers)
    iso = (T0 + timedelta(minutes=event.minutes)).isoformat()
    return route.link and (route.junk or router.is_news(event.identifiers, iso, event.event_id))


def replica_at(updates: list[MapUpdate]) -> dict[str, str]:
    """The replica after applying `updates` in order."""
    replica: dict[str, str] = {}
    for update in updates:
        if update.remapped:
            replica[update.key] = update.person_id
        else:
            replica.pop(update.key, None)
    return replica


@settings(max_examples=250, deadline=None)
@given(events=event_lists(), rules=st.sampled_from(RULE_SETS), data=st.data())
def test_routing_workers_and_one_authority_match_one_graph(
    events: list[Event], rules: IdentityRules, data: st.DataObject
) -> None:
    # Two routing workers split the events; each sends what it must to the authority.
    workers = [Router(rules, {}, 4), Router(rules, {}, 4)]
    owner = [data.draw(st.integers(0, 1), label=f"worker of {e.event_id}") for e in events]
    sent: list[list[Event]] = [[], []]
    for event, w in zip(events, owner, strict=True):
        if must_send(workers[w], event):
            sent[w].append(event)
    # The authority reads the links topic: the workers' messages interleaved in any order.
    arrival = data.draw(st.permutations(sent[0] + sent[1]), label="authority order")
    authority = Authority(rules)
    updates: list[MapUpdate] = []
    persisted: dict[str, list[object]] = {}
    for event in arrival:
        decision = authority.decide(
            event.identifiers, T0 + timedelta(minutes=event.minutes), event.event_id
        )
        updates.extend(decision.updates)
        for link in decision.links:
            persisted[link_key(link)] = link_record(link)

    oracle = IdentityGraph(rules)
    for event in events:
        event.observe(oracle)
    # Identifiers only ever seen alone never reach the authority: they are their own person.
    assert joined(authority.graph) == joined(oracle)
    assert authority.graph.refusals() == oracle.refusals()

    assert replica_at(updates) == authority.remapped

    # Each event is routed with the replica some prefix of the update stream behind.
    latest = {u.key: u.person_id for u in updates}
    for event in events:
        seen = data.draw(st.integers(0, len(updates)), label=f"replica at {event.event_id}")
        route = Router(rules, replica_at(updates[:seen]), 4).route(event.identifiers)
        if route.key is None:
            assert route.person_id is None
            continue
        resolved = latest.get(route.key, route.person_id)
        assert resolved == (oracle.person_of(route.key) or person_id(route.key))

    rebuilt = Authority.rebuild(rules, [link_from(k, v, rules) for k, v in persisted.items()])
    assert joined(rebuilt.graph) == joined(authority.graph)
    assert rebuilt.graph.refusals() == authority.graph.refusals()
    assert rebuilt.remapped == authority.remapped


@settings(max_examples=250, deadline=None)
@given(events=event_lists(), rules=st.sampled_from(RULE_SETS), data=st.data())
def test_map_updates_are_exactly_the_remapped_identifiers_that_changed(
    events: list[Event], rules: IdentityRules, data: st.DataObject
) -> None:
    """Whatever changed, in key order: the authority only looks at the identifiers the graph
    says moved, so this checks it never misses one."""
    authority = Authority(rules)
    for event in data.draw(st.permutations(events), label="arrival"):
        before = dict(authority.remapped)
        decision = authority.decide(
            event.identifiers, T0 + timedelta(minutes=event.minutes), event.event_id
        )
        ids: dict[str, str] = authority.graph.snapshot()["ids"]
        remapped = {key: pid for key, pid in ids.items() if pid != person_id(key)}
        assert authority.remapped == remapped
        changed = sorted(
            k for k in before.keys() | remapped.keys() if before.get(k) != remapped.get(k)
        )
        assert decision.updates == tuple(
            MapUpdate(key, ids[key], remapped=key in remapped) for key in changed
        )


@settings(max_examples=250, deadline=None)
@given(events=event_lists(), rules=st.sampled_from(RULE_SETS), data=st.data())
def test_stamping_a_batch_is_routing_its_events_one_by_one(
    events: list[Event], rules: IdentityRules, data: st.DataObject
) -> None:
    """`Router.stamp`, the stage's batch path, decides exactly what `route` and `is_news`
    decide event by event: person, key, partition (the input's own without a person), and
    which events the authority must see."""
    keys = sorted({f"{n}:{v}" for e in events for n, v in e.identifiers.items()})
    picked = data.draw(st.lists(st.sampled_from(keys), unique=True), label="remapped")
    remapped = {key: person_id(f"customer_id:c{n}") for n, key in enumerate(picked)}
    docs: list[dict[str, Any]] = [
        {
            "event_id": e.event_id,
            "occurred_at": (T0 + timedelta(minutes=e.minutes)).isoformat(),
            "identity": {**dict.fromkeys(VALUES), **e.identifiers},
        }
        for e in events
    ]
    for odd in ({}, None, {"customer_id": 7, "device_id": "d1"}):  # none, and not a string
        at = data.draw(st.integers(0, len(docs)), label="odd one at")
        docs.insert(at, {"event_id": f"x{at}", "occurred_at": T0.isoformat(), "identity": odd})
    one, batch = Router(rules, remapped, 4), Router(rules, remapped, 4)
    expected: dict[int, list[tuple[str | None, str | None]]] = {}
    must: list[str] = []
    for doc in docs:
        route = one.route(doc["identity"])
        home = 3 if route.partition is None else route.partition
        expected.setdefault(home, []).append((route.person_id, route.key))
        ident, at, event_id = doc["identity"], doc["occurred_at"], doc["event_id"]
        if route.link and (route.junk or one.is_news(ident, at, event_id)):
            must.append(event_id)
    cut = data.draw(st.integers(0, len(docs)), label="batch boundary")
    got: dict[int, list[tuple[str | None, str | None]]] = {}
    sent: list[str] = []
    for part in (docs[:cut], docs[cut:]):
        stamped, links = batch.stamp(part, 3)
        for target, rows in stamped.items():
            got.setdefault(target, []).extend((d["person_id"], d["person_key"]) for d in rows)
        sent += [d["event_id"] for d in links]
    assert got == expected
    assert sent == must
