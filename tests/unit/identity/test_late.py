"""stream_processors.identity.core.graph: links that arrive late but are earlier in event time take
over, and the change is sent as corrections (merges, moves, refusals and their retractions)."""

from __future__ import annotations

from schemas.identity_rules import IdentityRules
from stream_processors.identity.core.graph import IdentityGraph
from stream_processors.identity.core.records import MergeRecord, MoveRecord, RefusalRecord
from tests.unit.identity.builders import at, pid, see

CONFLICT_C1_C2 = "customer_id:c1 and customer_id:c2 are different customers"


def test_a_late_earlier_link_takes_the_device_over_and_emits_a_move() -> None:
    graph = IdentityGraph()
    see(graph, "e2", 60, device_id="d1", customer_id="c2")
    late = see(graph, "e1", 0, device_id="d1", customer_id="c1")
    assert late.person_id == pid("customer_id:c1")
    assert late.moves == (
        MoveRecord("e1", at(0), ("device_id:d1",), pid("customer_id:c2"), pid("customer_id:c1")),
    )
    assert late.merges == ()
    assert late.refusals == (
        RefusalRecord(
            "customer_id_conflict",
            "e2",
            at(60),
            ("customer_id:c2", "device_id:d1"),
            CONFLICT_C1_C2,
        ),
    )
    in_order = IdentityGraph()
    see(in_order, "e1", 0, device_id="d1", customer_id="c1")
    see(in_order, "e2", 60, device_id="d1", customer_id="c2")
    assert graph.persons() == in_order.persons()
    assert graph.refusals() == in_order.refusals()


def test_the_same_event_time_is_decided_by_the_smallest_event_id() -> None:
    for order in (("b", "a"), ("a", "b")):
        graph = IdentityGraph()
        customers = {"a": "c2", "b": "c1"}
        for event_id in order:
            see(graph, event_id, 0, device_id="d1", customer_id=customers[event_id])
        assert graph.person_of("device_id:d1") == pid("customer_id:c2")
        assert [r.event_id for r in graph.refusals()] == ["b"]


def test_a_late_link_retracts_the_refusal_it_makes_obsolete() -> None:
    graph = IdentityGraph()
    see(graph, "e2", 60, device_id="d1", customer_id="c2")
    refused = see(graph, "e3", 120, device_id="d1", customer_id="c1").refusals
    assert [r.event_id for r in refused] == ["e3"]
    # An earlier event links the same pair: its link replaces e3's and wins over e2's.
    late = see(graph, "e1", 0, device_id="d1", customer_id="c1")
    assert late.moves == (
        MoveRecord("e1", at(0), ("device_id:d1",), pid("customer_id:c2"), pid("customer_id:c1")),
    )
    assert late.refusals == (
        RefusalRecord(
            "customer_id_conflict",
            "e3",
            at(120),
            ("customer_id:c1", "device_id:d1"),
            CONFLICT_C1_C2,
            retracted=True,
        ),
        RefusalRecord(
            "customer_id_conflict",
            "e2",
            at(60),
            ("customer_id:c2", "device_id:d1"),
            CONFLICT_C1_C2,
        ),
    )
    assert late.refusals[0].record_id == refused[0].record_id
    assert [r.event_id for r in graph.refusals()] == ["e2"]


def test_a_late_link_that_only_joins_is_a_correction_merge() -> None:
    graph = IdentityGraph()
    see(graph, "login", 60, anonymous_id="a1", customer_id="c1")
    late = see(graph, "app", 0, anonymous_id="a1", device_id="d1")
    assert late.person_id == pid("customer_id:c1")
    assert late.merges == (
        MergeRecord(
            "correction",
            "app",
            at(0),
            ("device_id:d1",),
            tuple(sorted((pid("device_id:d1"), pid("customer_id:c1")))),
            pid("customer_id:c1"),
        ),
    )
    assert late.moves == () and late.refusals == ()


def test_a_late_link_at_a_cap_splits_a_person() -> None:
    graph = IdentityGraph(IdentityRules(caps={"anonymous_id": 1}))
    see(graph, "e2", 60, device_id="d1", anonymous_id="a2")
    late = see(graph, "e1", 0, device_id="d1", anonymous_id="a1")
    assert late.person_id == pid("device_id:d1")
    assert late.moves == (
        MoveRecord("e1", at(0), ("anonymous_id:a2",), pid("device_id:d1"), pid("anonymous_id:a2")),
    )
    assert [(r.rule, r.event_id, r.retracted) for r in late.refusals] == [("cap", "e2", False)]
    assert graph.persons()[pid("device_id:d1")] == ["anonymous_id:a1", "device_id:d1"]


def test_a_late_link_that_changes_the_naming_identifier_renames_the_person() -> None:
    graph = IdentityGraph()
    see(graph, "e2", 60, device_id="d1", customer_id="c2")
    see(graph, "e3", 61, device_id="d1", anonymous_id="a1")
    late = see(graph, "e1", 0, device_id="d1", customer_id="c1")
    # d1 and a1 leave c2 for c1 together: one move carries both.
    assert late.moves == (
        MoveRecord(
            "e1",
            at(0),
            ("anonymous_id:a1", "device_id:d1"),
            pid("customer_id:c2"),
            pid("customer_id:c1"),
        ),
    )
    assert graph.persons()[pid("customer_id:c2")] == ["customer_id:c2"]


def test_an_earlier_link_of_a_known_pair_with_the_same_outcome_sends_nothing() -> None:
    graph = IdentityGraph()
    see(graph, "e2", 60, anonymous_id="a1", customer_id="c1")
    assert see(graph, "e1", 0, anonymous_id="a1", customer_id="c1")[1:] == ((), (), ())
    assert [link[1] for link in graph.snapshot()["links"]] == ["e1"]
    assert see(graph, "e3", 90, anonymous_id="a1", customer_id="c1")[1:] == ((), (), ())
    assert [link[1] for link in graph.snapshot()["links"]] == ["e1"]


def test_a_late_link_between_two_clusters_re_decides_both() -> None:
    graph = IdentityGraph()
    see(graph, "e3", 30, device_id="d1", customer_id="c1")
    see(graph, "e4", 40, device_id="d2", customer_id="c2")
    see(graph, "e5", 50, device_id="d2", anonymous_id="a1")
    # a1 browsed on d1 first: its link to d1 is earlier than its link to d2.
    late = see(graph, "e1", 0, device_id="d1", anonymous_id="a1")
    assert graph.person_of("anonymous_id:a1") == pid("customer_id:c1")
    assert late.moves == (
        MoveRecord("e1", at(0), ("anonymous_id:a1",), pid("customer_id:c2"), pid("customer_id:c1")),
    )
    assert [(r.rule, r.event_id) for r in late.refusals] == [("customer_id_conflict", "e5")]
