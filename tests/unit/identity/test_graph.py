"""The identity graph: linking, person ids and the guards, events in time order."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from schemas.identity_rules import IdentityRules
from stream_processors.identity.core.graph import IdentityGraph
from stream_processors.identity.core.records import (
    PERSON_NAMESPACE,
    MergeRecord,
    RefusalRecord,
    person_id,
)
from tests.unit.identity.builders import at, pid, see

# -- linking ------------------------------------------------------------------------------


def test_login_links_the_anonymous_browsing_before_it() -> None:
    graph = IdentityGraph()
    browsing = [see(graph, f"e{i}", i, anonymous_id="a1").person_id for i in range(3)]
    assert browsing == [pid("anonymous_id:a1")] * 3
    login = see(graph, "login", 10, anonymous_id="a1", customer_id="c1")
    assert login.person_id == pid("customer_id:c1")
    # The merge names the browsing person, so its earlier events move to the customer.
    assert login.merges == (
        MergeRecord(
            "link",
            "login",
            at(10),
            ("customer_id:c1", "anonymous_id:a1"),
            tuple(sorted((pid("anonymous_id:a1"), pid("customer_id:c1")))),
            pid("customer_id:c1"),
        ),
    )
    assert login.moves == () and login.refusals == ()
    assert graph.person_of("anonymous_id:a1") == pid("customer_id:c1")
    assert see(graph, "later", 20, anonymous_id="a1").person_id == pid("customer_id:c1")


def test_a_phone_hash_links_a_call_to_the_customer() -> None:
    graph = IdentityGraph()
    see(graph, "app", 0, device_id="d1", customer_id="c1")
    call = see(graph, "call", 5, phone_hash="p1", customer_id="c1")
    assert call.person_id == pid("customer_id:c1")
    assert [m.old_person_ids for m in call.merges] == [
        tuple(sorted((pid("phone_hash:p1"), pid("customer_id:c1"))))
    ]
    # A later call matched only by the number belongs to the same person.
    assert see(graph, "call-2", 30, phone_hash="p1").person_id == pid("customer_id:c1")
    assert graph.persons()[pid("customer_id:c1")] == [
        "customer_id:c1",
        "device_id:d1",
        "phone_hash:p1",
    ]


def test_a_loyalty_card_joins_store_visits_to_the_customer() -> None:
    graph = IdentityGraph()
    scan = see(graph, "scan", 0, loyalty_id="L1")
    assert scan.person_id == pid("loyalty_id:L1")
    purchase = see(graph, "purchase", 3, loyalty_id="L1", customer_id="c1")
    assert purchase.person_id == pid("customer_id:c1")
    assert purchase.merges[0].person_id == pid("customer_id:c1")
    assert see(graph, "scan-2", 60, loyalty_id="L1").person_id == pid("customer_id:c1")


def test_identifiers_come_as_ingest_forwards_them_with_nulls() -> None:
    graph = IdentityGraph()
    identity: dict[str, str | None] = dict.fromkeys(
        ("customer_id", "anonymous_id", "device_id", "email_hash", "phone_hash", "loyalty_id")
    )
    identity["anonymous_id"] = "a1"
    assert graph.observe(identity, at(0), "e1").person_id == pid("anonymous_id:a1")
    identity["email_hash"] = "h1"
    assert graph.observe(identity, at(1), "e2").person_id == pid("email_hash:h1")
    assert graph.observe({}, at(2), "e3") == (None, (), (), ())


# -- person ids -----------------------------------------------------------------------------


def test_person_ids_are_uuid5_of_the_naming_identifier() -> None:
    for key in ("customer_id:c1", "anonymous_id:ä-1", "device_id:" + "x" * 256):
        assert person_id(key) == str(uuid.uuid5(PERSON_NAMESPACE, key))


@pytest.mark.parametrize(
    ("identifiers", "naming"),
    [
        ({"anonymous_id": "a1", "device_id": "d1"}, "device_id:d1"),
        ({"device_id": "d1", "phone_hash": "p1"}, "phone_hash:p1"),
        ({"phone_hash": "p1", "email_hash": "h1"}, "email_hash:h1"),
        ({"email_hash": "h1", "loyalty_id": "L1"}, "loyalty_id:L1"),
        ({"loyalty_id": "L1", "customer_id": "c1"}, "customer_id:c1"),
        ({"anonymous_id": "a1", "device_id": "d1", "customer_id": "c9"}, "customer_id:c9"),
    ],
)
def test_the_highest_priority_identifier_names_the_person(
    identifiers: dict[str, str], naming: str
) -> None:
    graph = IdentityGraph()
    assert graph.observe(identifiers, at(0), "e1").person_id == pid(naming)
    assert {graph.person_of(f"{k}:{v}") for k, v in identifiers.items()} == {pid(naming)}


def test_among_equals_the_smallest_value_names_the_person() -> None:
    graph = IdentityGraph()
    see(graph, "e1", 0, anonymous_id="a1", device_id="d2")
    assert see(graph, "e2", 1, anonymous_id="a1", device_id="d1").person_id == pid("device_id:d1")
    assert graph.person_of("device_id:d2") == pid("device_id:d1")


def test_the_same_events_give_the_same_ids_in_another_graph() -> None:
    events = [
        ({"anonymous_id": "a1"}, "e1"),
        ({"anonymous_id": "a1", "customer_id": "c1"}, "e2"),
        ({"device_id": "d1", "customer_id": "c1"}, "e3"),
    ]
    first, second = IdentityGraph(), IdentityGraph()
    ids = [first.observe(ident, at(i), e).person_id for i, (ident, e) in enumerate(events)]
    again = [second.observe(ident, at(i), e).person_id for i, (ident, e) in enumerate(events)]
    assert ids == again and first.persons() == second.persons()


# -- guards ---------------------------------------------------------------------------------


def test_two_customer_ids_on_one_device_are_refused_and_the_earliest_link_wins() -> None:
    graph = IdentityGraph()
    see(graph, "e1", 0, device_id="d1", customer_id="c1")
    second = see(graph, "e2", 60, device_id="d1", customer_id="c2")
    assert second.person_id == pid("customer_id:c2")
    assert second.merges == ()
    assert second.refusals == (
        RefusalRecord(
            "customer_id_conflict",
            "e2",
            at(60),
            ("customer_id:c2", "device_id:d1"),
            "customer_id:c1 and customer_id:c2 are different customers",
        ),
    )
    assert graph.person_of("device_id:d1") == pid("customer_id:c1")
    assert graph.refusals() == list(second.refusals)


def test_a_refused_pair_seen_again_later_adds_no_record() -> None:
    graph = IdentityGraph()
    see(graph, "e1", 0, device_id="d1", customer_id="c1")
    see(graph, "e2", 60, device_id="d1", customer_id="c2")
    assert see(graph, "e3", 90, device_id="d1", customer_id="c2")[1:] == ((), (), ())
    assert [r.event_id for r in graph.refusals()] == ["e2"]


def test_customer_ids_merge_when_allowed_up_to_their_cap() -> None:
    rules = IdentityRules(allow_customer_id_merge=True, caps={"customer_id": 2})
    graph = IdentityGraph(rules)
    see(graph, "e1", 0, device_id="d1", customer_id="c2")
    assert see(graph, "e2", 1, device_id="d1", customer_id="c1").person_id == pid("customer_id:c1")
    third = see(graph, "e3", 2, device_id="d1", customer_id="c3")
    assert [(r.rule, r.detail) for r in third.refusals] == [("cap", "customer_id: 1 + 2 > cap 2")]


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "null",
        "NULL",
        ' "null" ',
        "'undefined'",
        "0",
        "anonymous",
        "Guest",
        "[object Object]",
        "NaN",
        "00000000-0000-0000-0000-000000000000",
    ],
)
def test_denylisted_values_never_link(junk: str) -> None:
    graph = IdentityGraph()
    first = see(graph, "e1", 0, anonymous_id=junk, customer_id="c1")
    second = see(graph, "e2", 1, anonymous_id=junk, customer_id="c2")
    assert (first.person_id, second.person_id) == (pid("customer_id:c1"), pid("customer_id:c2"))
    assert first.merges == second.merges == ()
    assert first.refusals == (
        RefusalRecord(
            "denylist", "e1", at(0), (f"anonymous_id:{junk}",), f"anonymous_id:{junk}: denylist"
        ),
    )
    assert graph.person_of(f"anonymous_id:{junk}") is None
    assert graph.refusals() == []  # junk is refused per event, not held as state


def test_an_event_with_only_junk_has_no_person() -> None:
    rules = IdentityRules(deny_patterns=(r"test-\d+",))
    graph = IdentityGraph(rules)
    only = see(graph, "e1", 0, anonymous_id="undefined", device_id="TEST-1")
    assert only.person_id is None
    assert only.refusals[0].identifiers == ("anonymous_id:undefined", "device_id:TEST-1")
    assert only.refusals[0].detail == "anonymous_id:undefined: denylist, device_id:TEST-1: pattern"
    alone = see(graph, "e2", 1, device_id="test-2")
    assert alone.person_id is None and alone.refusals[0].rule == "denylist"


def test_a_cap_per_type_holds_and_names_the_type() -> None:
    graph = IdentityGraph(IdentityRules(caps={"anonymous_id": 2}))
    for i in (1, 2):
        see(graph, f"e{i}", i, device_id="d1", anonymous_id=f"a{i}")
    third = see(graph, "e3", 3, device_id="d1", anonymous_id="a3")
    assert third.person_id == pid("device_id:d1")
    assert [(r.rule, r.detail) for r in third.refusals] == [("cap", "anonymous_id: 2 + 1 > cap 2")]
    assert graph.person_of("anonymous_id:a3") == pid("anonymous_id:a3")
    assert graph.persons()[pid("device_id:d1")] == [
        "anonymous_id:a1",
        "anonymous_id:a2",
        "device_id:d1",
    ]


@pytest.mark.parametrize(
    ("priorities", "kept", "refused"),
    [
        (None, "device_id:d1", "anonymous_id:a1"),
        (
            ("customer_id", "anonymous_id", "loyalty_id", "email_hash", "phone_hash", "device_id"),
            "anonymous_id:a1",
            "device_id:d1",
        ),
    ],
)
def test_priorities_decide_which_link_of_an_event_gives_way_at_a_cap(
    priorities: tuple[str, ...] | None, kept: str, refused: str
) -> None:
    rules = IdentityRules(max_identifiers=2, **({"priorities": priorities} if priorities else {}))
    graph = IdentityGraph(rules)
    result = see(graph, "e1", 0, customer_id="c1", device_id="d1", anonymous_id="a1")
    assert graph.person_of(kept) == pid("customer_id:c1")
    assert graph.person_of(refused) == pid(refused)
    assert [(r.rule, r.identifiers) for r in result.refusals] == [
        ("cap", ("customer_id:c1", refused))
    ]
    assert result.refusals[0].detail == "identifiers: 2 + 1 > cap 2"


# -- replays and bad input ------------------------------------------------------------------


def test_replaying_events_adds_no_record_and_changes_nothing() -> None:
    graph = IdentityGraph()
    events = [
        ({"anonymous_id": "a1"}, "e1", 0),
        ({"anonymous_id": "a1", "customer_id": "c1"}, "e2", 5),
        ({"device_id": "d1", "customer_id": "c2"}, "e3", 6),
        ({"device_id": "d1", "customer_id": "c1"}, "e4", 7),
    ]
    first = [graph.observe(i, at(m), e) for i, e, m in events]
    persons, snapshot = graph.persons(), graph.snapshot()
    again = [graph.observe(i, at(m), e) for i, e, m in events]
    # Stitching is retroactive: the replayed browsing event now resolves to the customer.
    customer = pid("customer_id:c1")
    assert [r.person_id for r in again] == [customer, *(r.person_id for r in first[1:])]
    assert all(r[1:] == ((), (), ()) for r in again)
    assert graph.persons() == persons and graph.snapshot() == snapshot


def test_unknown_identifier_types_and_naive_times_are_errors() -> None:
    graph = IdentityGraph()
    with pytest.raises(ValueError, match="unknown identifier type 'shoe_size'"):
        graph.observe({"shoe_size": "44"}, at(0), "e1")
    with pytest.raises(ValueError, match="unknown identifier type 'shoe_size'"):
        graph.observe({"customer_id": "c1", "shoe_size": "44"}, at(0), "e1")
    with pytest.raises(ValueError, match="has no timezone"):
        graph.observe({"customer_id": "c1", "device_id": "d1"}, datetime(2025, 3, 1), "e1")


def test_event_times_are_kept_in_utc() -> None:
    graph = IdentityGraph()
    local = datetime.fromisoformat("2025-03-01T11:00:00+02:00")
    merge = graph.observe({"customer_id": "c1", "device_id": "d1"}, local, "e1").merges[0]
    assert merge.event_time == at(0) and merge.event_time.utcoffset() is not None
    assert merge.event_time.isoformat() == "2025-03-01T09:00:00+00:00"
