"""Persons in transit between partitions: forwards, chains, expiry, awaited states."""

from __future__ import annotations

import orjson

from schemas.partitioning import partition_for
from stream_processors.journeys.handoffs import AWAITED, EARLY, FORWARD, Handoffs, Outbox
from tests.unit.journeys.tables import written


def test_a_chain_of_merges_forwards_everyone_to_the_last_person() -> None:
    h = Handoffs()
    h.forward_to("a", "b", until=100)
    h.forward_to("b", "c", until=200)
    h.forward_to("c", "d", until=300)
    assert h.target("a") == h.target("b") == h.target("c") == "d"
    assert h.target("d") is None and h.target("x") is None
    assert h.forward["a"] == ("d", 100)  # each keeps its own expiry


def test_forwards_expire_with_event_time_and_leave_tombstones() -> None:
    h = Handoffs()
    h.forward_to("a", "b", until=100)
    h.forward_to("c", "b", until=300)
    data = written(h, {})
    assert set(data) == {FORWARD + "a", FORWARD + "c"}
    h.expire(99)
    assert h.target("a") == "b" and not list(h.take_entries())
    h.expire(100)
    assert h.target("a") is None and h.target("c") == "b"
    assert written(h, data) == {FORWARD + "c": ["b", 300]}
    h.forward_to("b", "e", until=400)  # the forward still standing follows the chain
    assert h.target("c") == "e"
    h.expire(10_000)
    assert not h.forward and written(h, data) == {}


def test_a_forward_set_again_expires_at_its_new_time() -> None:
    h = Handoffs()
    h.forward_to("a", "b", until=100)
    h.forward_to("a", "c", until=500)
    h.expire(200)
    assert h.target("a") == "c"
    h.forward_to("c", "d", until=600)
    assert h.target("a") == "d"


def test_state_may_arrive_before_or_after_its_merge_record() -> None:
    h = Handoffs()
    h.expect("a", 100)  # the record first: wait
    assert h.awaiting == {"a": 100}
    h.arrived("a")
    assert not h.awaiting and not h.early
    h.arrived("b")  # the state first: remember it, so the record does not wait
    assert h.early == {"b": 1}
    h.expect("b", 100)
    assert not h.awaiting and not h.early


def test_restore_gives_back_what_was_written() -> None:
    h = Handoffs()
    h.forward_to("a", "b", until=100)
    h.forward_to("b", "c", until=200)
    h.expect("x", 300)
    h.expect("z", None)
    h.arrived("y")
    data = written(h, {"person-1": {"snapshot": 1}})
    assert AWAITED + "x" in data and EARLY + "y" in data
    again = Handoffs.restore(data)
    assert data == {"person-1": {"snapshot": 1}}  # entries taken out, persons left
    assert again.forward == h.forward and again.early == {"y": 1}
    assert again.awaiting == {"x": 300, "z": None} and again.awaited_before() is None
    again.forward_to("c", "d", until=300)  # chains and expiry work after a restore
    assert again.target("a") == "d"
    again.expire(150)
    assert again.target("a") is None and again.target("b") == "d"


def test_time_stops_just_short_of_the_earliest_merge_awaited() -> None:
    h = Handoffs()
    assert h.awaited_before() is None  # nothing awaited: no bound from here
    h.expect("a", 500)
    h.expect("b", 300)
    assert h.awaited_before() == 299
    h.expect("b", 400)  # merged in again, later: the earlier merge still bounds
    assert h.awaited_before() == 299
    h.arrived("b")  # one of its two states: the other is still on its way
    assert h.awaited_before() == 299
    h.arrived("b")
    assert h.awaited_before() == 499
    h.expect("c", None)  # a merge without its time: time stands until its state is here
    assert h.awaited_before() is None
    h.arrived("c")
    assert h.awaited_before() == 499


def test_awaited_persons_written_before_merge_times_were_kept_restore_as_unknown() -> None:
    """The previous version wrote 1 for an awaited person: its merge's time is unknown, so
    the restored partition's time stands until the state arrives, as it did then."""
    again = Handoffs.restore({AWAITED + "x": 1, "person-1": {"snapshot": 1}})
    assert again.awaiting == {"x": None} and again.awaited_before() is None
    again.arrived("x")
    assert again.awaiting == {}


def test_a_person_merged_in_twice_is_awaited_until_both_its_states_came() -> None:
    """Each merge record sends the old person's state once, and records and states race:
    two states ahead of their two records must leave nothing awaited (a set remembered one,
    and the second record then waited for ever, freezing the partition's time)."""
    h = Handoffs()
    h.arrived("a")
    h.arrived("a")
    h.expect("a", 100)
    h.expect("a", 200)
    assert not h.awaiting and not h.early and h.awaited_before() is None

    h.expect("b", 300)
    h.expect("b", 100)
    data = written(h, {})
    assert data == {AWAITED + "b": [100, 2]}
    again = Handoffs.restore(data)
    again.arrived("b")
    assert again.awaited_before() == 99 and written(again, data) == {AWAITED + "b": [100]}
    again.arrived("b")
    assert not again.awaiting and written(again, data) == {}

    c = Handoffs()
    c.arrived("c")
    c.arrived("c")
    assert written(c, {}) == {EARLY + "c": 2}
    c.expect("c", 100)
    assert c.early == {"c": 1} and not c.awaiting


def test_a_person_held_for_two_merges_into_the_same_person_joins_it_at_the_first() -> None:
    for first, second in ((100, 200), (200, 100)):
        h = Handoffs()
        h.hold("a", "n", first)
        h.hold("a", "n", second)
        assert h.held == {"a": ("n", 100)}
        assert h.due(150) == [(100, "a", "n")] and not h.held
    h = Handoffs()
    h.hold("a", "n", 100)
    h.hold("a", "m", 200)  # held again for a merge into another person: that one stands
    assert h.due(150) == [] and h.due(200) == [(200, "a", "m")]


def test_states_ahead_of_their_merge_written_before_they_counted_restore_as_one() -> None:
    again = Handoffs.restore({EARLY + "x": 1})
    assert again.early == {"x": 1}
    again.expect("x", 100)
    assert not again.early and not again.awaiting


def test_outbox_sends_rows_to_the_new_persons_partition() -> None:
    out = Outbox(partitions=4)
    out.person("new", "old", {"journeys": []}, merged_ms=1_700_000_000_000)
    out.event("new", {"event_id": "e1", "person_id": "old"}, "old")
    (target, rows), *rest = out.rows.items()
    assert not rest and target == partition_for(b"new", 4)
    person, event = (orjson.loads(r) for r in rows)
    assert person == {
        "kind": "person",
        "person_id": "new",
        "from": "old",
        "state": {"journeys": []},
        "relay": False,
        "at": 1_700_000_000_000,  # the merge's event time: it bounds the hits taken there
    }
    assert event["event"]["person_id"] == "new"  # restamped for the receiver
    assert event["from"] == "old"  # which may hold the old person apart until its merge
