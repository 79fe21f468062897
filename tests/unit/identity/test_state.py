"""stream_processors.identity.core.state and identity_corrections: snapshots as plain data, and
the records that describe a change of persons or refusals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.identity_rules import IdentityRules
from stream_processors.identity.core.corrections import person_changes, refusal_changes
from stream_processors.identity.core.graph import IdentityGraph
from stream_processors.identity.core.records import MergeRecord, MoveRecord, RefusalRecord
from tests.unit.identity.builders import at, pid, see

RULES = IdentityRules(caps={"customer_id": 1, "anonymous_id": 2})


def busy_graph() -> IdentityGraph:
    graph = IdentityGraph(RULES)
    see(graph, "e1", 0, anonymous_id="a1")
    see(graph, "e2", 10, anonymous_id="a1", customer_id="c1")
    see(graph, "e3", 20, device_id="d1", customer_id="c2")
    see(graph, "e4", 30, device_id="d1", customer_id="c1")
    see(graph, "e5", 40, device_id="d1", anonymous_id="a2")
    see(graph, "e6", 50, loyalty_id="L1")
    return graph


def test_a_snapshot_is_plain_json_and_restores_the_same_graph() -> None:
    graph = busy_graph()
    snapshot = orjson.loads(orjson.dumps(graph.snapshot()))
    restored = IdentityGraph.restore(snapshot, RULES)
    assert restored.persons() == graph.persons()
    assert restored.refusals() == graph.refusals()
    assert restored.snapshot() == snapshot
    # Both go on the same way, late links included.
    for g in (graph, restored):
        see(g, "e0", 5, device_id="d1", customer_id="c1")
    assert restored.persons() == graph.persons() and restored.refusals() == graph.refusals()
    assert graph.person_of("device_id:d1") == pid("customer_id:c1")


def test_a_snapshot_keeps_singletons_and_one_link_per_pair() -> None:
    snapshot = busy_graph().snapshot()
    assert snapshot["v"] == 1
    assert snapshot["ids"]["loyalty_id:L1"] == pid("loyalty_id:L1")
    assert len(snapshot["links"]) == 4
    assert snapshot["refusals"] == [
        [
            "customer_id:c1",
            "device_id:d1",
            "customer_id_conflict",
            "customer_id:c1 and customer_id:c2 are different customers",
        ],
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [({"v": 2}, "version 2"), ({"rules": IdentityRules().model_dump(mode="json")}, "other rules")],
)
def test_restore_refuses_another_version_or_other_rules(
    change: dict[str, Any], message: str
) -> None:
    snapshot = {**busy_graph().snapshot(), **change}
    with pytest.raises(ValueError, match=message):
        IdentityGraph.restore(snapshot, RULES)


# -- corrections ----------------------------------------------------------------------------


def test_no_change_gives_no_records() -> None:
    before = {"a": "P", "b": "P", "c": "Q"}
    assert person_changes(before, dict(before), "e", at(0)) == ([], [])


def test_whole_persons_joining_one_are_a_merge() -> None:
    before = {"a": "P", "b": "P", "c": "Q", "d": "R"}
    after = {"a": "P", "b": "P", "c": "P", "d": "P"}
    merges, moves = person_changes(before, after, "e", at(0))
    assert merges == [MergeRecord("correction", "e", at(0), ("c", "d"), ("P", "Q", "R"), "P")]
    assert moves == []


def test_a_person_spread_over_several_is_a_split_into_moves() -> None:
    before = {"a": "P", "b": "P", "c": "P", "x": "Q"}
    after = {"a": "P", "b": "Q", "c": "S", "x": "Q"}
    merges, moves = person_changes(before, after, "e", at(0))
    assert merges == []
    assert moves == [
        MoveRecord("e", at(0), ("b",), "P", "Q"),
        MoveRecord("e", at(0), ("c",), "P", "S"),
    ]


def test_a_whole_person_under_a_new_id_is_a_merge_of_one() -> None:
    before = {"a": "P", "b": "P", "c": "Q"}
    after = {"a": "N", "b": "N", "c": "Q"}
    merges, _ = person_changes(before, after, "e", at(0))
    assert merges == [MergeRecord("correction", "e", at(0), ("a", "b"), ("P",), "N")]


def refusal(event_id: str, rule: str = "cap", detail: str = "d") -> RefusalRecord:
    return RefusalRecord(rule, event_id, at(0), ("u", "v"), detail)  # type: ignore[arg-type]


def test_refusal_changes_retract_what_is_gone_and_send_what_is_new() -> None:
    pair = ("u", "v")
    assert refusal_changes({pair: refusal("e1")}, {pair: refusal("e1")}) == []
    assert refusal_changes({}, {pair: refusal("e1")}) == [refusal("e1")]
    gone = refusal_changes({pair: refusal("e1")}, {})
    assert gone == [RefusalRecord("cap", "e1", at(0), ("u", "v"), "d", retracted=True)]
    moved = refusal_changes({pair: refusal("e2")}, {pair: refusal("e1")})
    assert [(r.event_id, r.retracted) for r in moved] == [("e2", True), ("e1", False)]
    # Same refusal, new detail: sent again under the same id, nothing retracted.
    assert refusal_changes({pair: refusal("e1")}, {pair: refusal("e1", detail="x")}) == [
        refusal("e1", detail="x")
    ]


def test_record_ids_are_deterministic_and_shared_by_a_retraction() -> None:
    first = refusal("e1")
    assert first.record_id == refusal("e1").record_id
    assert first.record_id == refusal_changes({("u", "v"): first}, {})[0].record_id
    assert first.record_id != refusal("e2").record_id
    merge = MergeRecord("link", "e", at(0), ("a", "b"), ("P", "Q"), "P")
    move = MoveRecord("e", at(0), ("a",), "P", "Q")
    assert merge.record_id == MergeRecord("link", "e", at(0), ("a", "b"), ("P", "Q"), "P").record_id
    assert len({merge.record_id, move.record_id, first.record_id}) == 3
