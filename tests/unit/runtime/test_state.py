"""Stage state, the pure parts: dirty tracking and applying changelog records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from stream_processors.runtime.state import (
    APPLIED_KEY,
    Applied,
    ChangelogTable,
    PartitionState,
    Restored,
    StateError,
    _apply,
)


def value(v: Any, version: int = 1) -> bytes:
    return orjson.dumps([version, v])


def marker(offset: int, watermark: int | None, version: int = 1) -> bytes:
    return orjson.dumps([version, offset, watermark])


def fresh() -> Restored:
    return Restored(PartitionState(), Applied())


# -- PartitionState -----------------------------------------------------------------------


def test_set_and_delete_mark_keys_dirty() -> None:
    state = PartitionState({"kept": 1, "gone": 2})
    assert state.dirty == set()
    state["new"] = 3
    state["kept"] = 1  # an unchanged value is still a write
    del state["gone"]
    assert state.dirty == {"new", "kept", "gone"}
    assert state.data == {"kept": 1, "new": 3}


def test_reads_do_not_mark_dirty() -> None:
    state = PartitionState({"a": 1})
    assert state["a"] == 1
    assert state.get("b") is None
    assert "a" in state and "b" not in state
    assert len(state) == 1
    assert list(state) == ["a"]
    assert list(state.items()) == [("a", 1)]
    assert state.dirty == set()


def test_deleting_a_missing_key_raises_and_marks_nothing() -> None:
    state = PartitionState()
    with pytest.raises(KeyError):
        del state["missing"]
    assert state.dirty == set()


def test_mapping_helpers_go_through_dirty_tracking() -> None:
    state = PartitionState({"a": 1, "b": 2})
    assert state.pop("a") == 1
    state.update({"c": 3})
    state.setdefault("d", 4)
    assert state.dirty == {"a", "c", "d"}
    assert dict(state) == {"b": 2, "c": 3, "d": 4}


def test_contains_len_and_iter_follow_the_data() -> None:
    state = PartitionState()
    for key in ("x", "y", "z"):
        state[key] = key.upper()
    del state["y"]
    assert len(state) == 2
    assert list(state) == ["x", "z"]
    assert "y" not in state
    not_a_key: object = 1  # any object may be asked about
    assert not_a_key not in state


# -- _apply -------------------------------------------------------------------------------


def test_apply_sets_values_without_marking_them_dirty() -> None:
    target = fresh()
    _apply(target, b"user-1", value({"visits": 3, "tags": ["a"]}))
    _apply(target, "caf\u00e9".encode(), value(7))
    assert target.state.data == {"user-1": {"visits": 3, "tags": ["a"]}, "caf\u00e9": 7}
    assert target.state.dirty == set()
    assert target.records == 2


def test_apply_tombstone_removes_and_tolerates_missing_keys() -> None:
    target = fresh()
    _apply(target, b"a", value(1))
    _apply(target, b"a", None)
    _apply(target, b"never-written", None)
    assert target.state.data == {}
    assert target.records == 3


def test_apply_last_write_wins_and_order_follows_last_writes() -> None:
    target = fresh()
    for key, v in [(b"a", 1), (b"b", 2), (b"c", 3), (b"a", 10)]:
        _apply(target, key, value(v))
    assert list(target.state.data.items()) == [("b", 2), ("c", 3), ("a", 10)]


def test_apply_value_null_is_a_stored_value_not_a_tombstone() -> None:
    target = fresh()
    _apply(target, b"a", value(None))
    assert target.state.data == {"a": None}


@pytest.mark.parametrize("watermark", [None, 1_740_830_400_000])
def test_apply_reads_the_applied_marker(watermark: int | None) -> None:
    target = fresh()
    _apply(target, APPLIED_KEY, marker(41, 1))
    _apply(target, APPLIED_KEY, marker(42, watermark))
    assert target.applied == Applied(42, watermark)
    assert target.state.data == {}
    assert target.records == 2


def test_apply_ignores_a_tombstoned_marker_and_keyless_records() -> None:
    target = fresh()
    _apply(target, APPLIED_KEY, marker(7, 100))
    _apply(target, APPLIED_KEY, None)
    _apply(target, None, value("orphan"))
    assert target.applied == Applied(7, 100)
    assert target.state.data == {}
    assert target.records == 3


@pytest.mark.parametrize(
    ("key", "payload"),
    [
        pytest.param(b"a", value(1, version=2), id="value-v2"),
        pytest.param(b"a", value(1, version=0), id="value-v0"),
        pytest.param(APPLIED_KEY, marker(5, None, version=2), id="marker-v2"),
    ],
)
def test_apply_refuses_records_of_another_version(key: bytes, payload: bytes) -> None:
    target = fresh()
    with pytest.raises(StateError, match="unknown version"):
        _apply(target, key, payload)
    assert target.state.data == {}
    assert target.applied == Applied()


def test_replaying_a_changelog_rebuilds_the_final_state() -> None:
    log: list[tuple[bytes | None, bytes | None]] = [
        (b"a", value(1)),
        (b"b", value(2)),
        (APPLIED_KEY, marker(10, 1000)),
        (b"a", None),
        (b"c", value([1, 2])),
        (b"b", value(20)),
        (APPLIED_KEY, marker(12, 1100)),
    ]
    target = fresh()
    for key, payload in log:
        _apply(target, key, payload)
    assert list(target.state.data.items()) == [("c", [1, 2]), ("b", 20)]
    assert target.applied == Applied(12, 1100)
    assert target.records == len(log)


# -- what flush writes is what restore reads ----------------------------------------------


class RecordingSender:
    """Stands in for TransactionalSender: keeps what would be produced, per partition."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.hook: Callable[[], None] = lambda: None

    def before_commit(self, hook: Callable[[], None]) -> None:
        self.hook = hook

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        self.records.append((topic, value, key, partition))


def test_flushed_changes_restore_to_the_same_state() -> None:
    sender = RecordingSender()
    table = ChangelogTable("seen", "t.changelog", sender, kafka=None)  # type: ignore[arg-type]
    table.partitions = {0: PartitionState(), 3: PartitionState()}
    table.applied = {0: Applied(), 3: Applied()}
    table[0]["a"] = {"n": 1}
    table[0]["b"] = 2
    table[3]["x"] = "y"
    table.mark_applied(0, 17, 5000)
    sender.hook()  # the commit hook is flush
    del table[0]["a"]
    table.mark_applied(0, 18, 4000)  # an older watermark does not move it back
    sender.hook()

    assert {t for t, *_ in sender.records} == {"t.changelog"}
    assert all(not s.dirty for s in table.partitions.values())
    for partition in (0, 3):
        target = fresh()
        for _, payload, key, p in sender.records:
            if p == partition:
                _apply(target, key, payload)
        assert target.state.data == table[partition].data
        assert target.applied == (Applied(18, 5000) if partition == 0 else Applied())
