"""Erased persons leave the stages' state: the identity authority's links, the journeys core's
persons and aliases, and the handoffs between partitions, with tombstones for the changelog."""

from __future__ import annotations

from typing import Any

from producers.pii import hash_with
from schemas.privacy import SuppressionList
from schemas.settings import PiiSettings
from stream_processors.journeys.handoffs import AWAITED, EARLY, FORWARD, Handoffs
from stream_processors.privacy.forget import SuppressionWatch, forget_links
from stream_processors.runtime.state import PartitionState
from tests.unit.journeys.test_core import Run

PII = PiiSettings()


def suppressed(*values: str) -> SuppressionList:
    found = SuppressionList(lambda k, v: hash_with(PII, k, v))
    for value in values:
        found.add(hash_with(PII, PII.active_key_id, value))
    return found


def test_links_touching_an_erased_identifier_are_deleted_and_others_kept() -> None:
    state = PartitionState(
        {
            "customer_id:c-1\x1femail_hash:dev:a": [1],
            "anonymous_id:x\x1fcustomer_id:c-1": [2],
            "customer_id:c-2\x1femail_hash:dev:b": [3],
            "\x00frontier": [4],
        }
    )
    assert forget_links(state, suppressed("customer_id:c-1"), "\x00frontier") == 2
    assert set(state) == {"customer_id:c-2\x1femail_hash:dev:b", "\x00frontier"}
    assert state.dirty == {
        "customer_id:c-1\x1femail_hash:dev:a",
        "anonymous_id:x\x1fcustomer_id:c-1",
    }


def test_an_erased_person_and_their_alias_leave_the_journeys_core() -> None:
    run = Run()
    run.send("old", run.event(1, "product_view"))
    run.send("p", run.event(2, "product_view"))
    run.send("other", run.event(3, "product_view"))
    run.core.move_person("old", "p")
    run.core.take_dirty()
    assert set(run.core.held_persons()) == {"old", "p", "other"}
    for pid in ("old", "p"):
        run.core.erase_person(pid)
    assert run.core.held_persons() == ["other"]
    assert run.core.take_dirty() == {"old", "p"}  # persisted as tombstones
    assert run.core.snapshot_person("old") is None and run.core.snapshot_person("p") is None
    assert run.core.snapshot_person("other") is not None


def test_handoffs_naming_an_erased_person_are_dropped_with_tombstones() -> None:
    h = Handoffs()
    h.forward_to("a", "p", until=100)
    h.forward_to("p", "b", until=100)
    h.forward_to("c", "d", until=100)
    h.expect("p", 100)
    h.arrived("q")
    list(h.take_entries())  # written in an earlier transaction
    assert h.names() == {"a", "p", "b", "c", "d", "q"}
    h.forget({"a", "p", "q"})  # a merged into p: erased with them
    assert h.forward == {"c": ("d", 100)}
    entries: dict[str, Any] = dict(h.take_entries())
    assert entries == {
        FORWARD + "a": None,
        FORWARD + "p": None,
        AWAITED + "p": None,
        EARLY + "q": None,
    }
    h.expire(1_000)  # the dropped forwards' expiries pass without trouble
    assert not h.forward


class _Replica:
    def __init__(self) -> None:
        self.list = suppressed()

    def stop(self) -> None:
        pass


def test_state_is_checked_again_when_the_list_grows_or_the_state_is_restored() -> None:
    replica = _Replica()
    watch = SuppressionWatch(replica)
    state = object()
    assert not watch.fresh(0, state)  # nothing erased: nothing to check
    replica.list.add(hash_with(PII, "dev", "person:p"))
    assert watch.fresh(0, state) and not watch.fresh(0, state)
    assert watch.fresh(0, object())  # restored: a new state object
    assert watch.fresh(1, state)  # another partition
    replica.list.add(hash_with(PII, "dev", "person:q"))
    assert watch.fresh(1, state)
