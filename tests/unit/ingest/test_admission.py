"""Ingest admission: validation, rejection reasons, deduplication and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from schemas.touchpoint import MAX_EVENT_BYTES, Touchpoint
from stream_processors.ingest.core.admission import Ingest
from tests.unit.builders import NOW, event_id, touchpoint

NOW_S = 1_740_830_400  # NOW as epoch seconds
TOLERANCE = timedelta(minutes=5)


def make_ingest(seen: dict[str, int] | None = None, horizon_s: int = 7 * 86_400) -> Ingest:
    return Ingest(
        seen if seen is not None else {},
        horizon=timedelta(seconds=horizon_s),
        future_tolerance=TOLERANCE,
    )


def fragment_len(raw: dict[str, Any]) -> int:
    """The serialized size Ingest measures for `raw` (received_at set, times in UTC)."""
    event = Touchpoint.model_validate(raw)
    event.received_at = NOW
    return len(event.normalize_utc().model_dump_json().encode())


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(f"{prefix}.")


def event_of_size(n: int, size: int) -> dict[str, Any]:
    """A valid event whose forwarded fragment is exactly `size` bytes."""
    props: dict[str, Any] = {f"p{i:02d}": "x" * 1010 for i in range(31)}
    props["tail"] = ""
    base = fragment_len(touchpoint(n, properties=props))
    assert 0 <= size - base <= 1024
    props["tail"] = "x" * (size - base)
    return touchpoint(n, properties=props)


# -- accepted events ----------------------------------------------------------------------


def test_valid_events_become_utc_fragments_with_received_at() -> None:
    seen: dict[str, int] = {}
    raws = [touchpoint(1), touchpoint(2, occurred_at="2025-03-01T13:58:00+02:00")]
    result = make_ingest(seen).process(raws, NOW)
    assert [str(e.event_id) for e in result.accepted] == [event_id(1), event_id(2)]
    assert result.rejected == [] and result.duplicates == 0
    docs = [orjson.loads(f) for f in result.fragments]
    assert [d["event_id"] for d in docs] == [event_id(1), event_id(2)]
    assert [d["occurred_at"] for d in docs] == ["2025-03-01T11:59:00Z", "2025-03-01T11:58:00Z"]
    assert all(d["received_at"] == "2025-03-01T12:00:00Z" for d in docs)
    assert docs[0]["properties"] == {"n": 1}
    assert seen == {event_id(1): NOW_S, event_id(2): NOW_S}


def test_a_fragment_validates_as_a_touchpoint_again() -> None:
    result = make_ingest().process([touchpoint(1)], NOW)
    again = Touchpoint.model_validate_json(result.fragments[0])
    assert again == result.accepted[0]


def test_received_at_from_the_producer_is_kept_and_moved_to_utc() -> None:
    raw = touchpoint(1, received_at="2025-03-01T08:59:30-03:00")
    (doc,) = [orjson.loads(f) for f in make_ingest().process([raw], NOW).fragments]
    assert doc["received_at"] == "2025-03-01T11:59:30Z"


def test_now_with_an_offset_still_gives_utc_received_at() -> None:
    local_now = NOW.astimezone(datetime.fromisoformat("2025-01-01T00:00:00+05:30").tzinfo)
    (doc,) = [orjson.loads(f) for f in make_ingest().process([touchpoint(1)], local_now).fragments]
    assert doc["received_at"] == "2025-03-01T12:00:00Z"


# -- duplicates ---------------------------------------------------------------------------


def test_duplicates_within_one_call_keep_the_first_copy() -> None:
    first, second = touchpoint(1, properties={"copy": 1}), touchpoint(1, properties={"copy": 2})
    result = make_ingest().process([first, touchpoint(2), second, touchpoint(2)], NOW)
    assert [str(e.event_id) for e in result.accepted] == [event_id(1), event_id(2)]
    assert result.accepted[0].properties == {"copy": 1}
    assert result.duplicates == 2
    assert len(result.fragments) == 2


def test_duplicates_across_calls_are_dropped_and_counted() -> None:
    ingest = make_ingest()
    ingest.process([touchpoint(1), touchpoint(2)], NOW)
    later = NOW + timedelta(hours=1)
    result = ingest.process([touchpoint(2), touchpoint(3), touchpoint(1)], later)
    assert [str(e.event_id) for e in result.accepted] == [event_id(3)]
    assert result.duplicates == 2
    # The first-seen time of a repeated id is not refreshed.
    assert ingest.seen[event_id(1)] == NOW_S


def test_the_same_id_in_another_spelling_is_a_duplicate() -> None:
    ingest = make_ingest()
    ingest.process([touchpoint(1)], NOW)
    result = ingest.process([touchpoint(1, event_id=event_id(1).upper())], NOW)
    assert result.accepted == [] and result.duplicates == 1


# -- rejections ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"channel": "fax"}, {"channel"}),
        ({"identity": {}}, {"identity"}),
        ({"identity": {"device_id": ""}}, {"identity.device_id"}),
        ({"properties": {"k": [1, 2]}}, {"properties.k"}),
        ({"occurred_at": "2025-03-01T11:00:00"}, {"occurred_at"}),
        ({"channel": 7, "surprise": True}, {"channel", "surprise"}),
    ],
)
def test_invalid_events_are_rejected_with_field_paths(
    overrides: dict[str, Any], fields: set[str]
) -> None:
    seen: dict[str, int] = {}
    raw = touchpoint(1, **overrides)
    result = make_ingest(seen).process([raw], NOW)
    (rejection,) = result.rejected
    assert rejection.reason == "invalid_field"
    # A union member's error adds its tag to the path ("properties.k.int"); match by prefix.
    assert {f for f in fields for e in rejection.errors if under(e.field, f)} == fields
    assert all(any(under(e.field, f) for f in fields) for e in rejection.errors)
    assert rejection.raw == orjson.dumps(raw)
    assert rejection.event_id == event_id(1)
    assert all(f"{e.field}: {e.message}" in rejection.detail for e in rejection.errors[:5])
    assert result.accepted == [] and result.fragments == [] and seen == {}


def test_an_invalid_event_id_is_not_reported_as_the_event_id() -> None:
    (rejection,) = make_ingest().process([touchpoint(1, event_id=12)], NOW).rejected
    assert rejection.reason == "invalid_field"
    assert rejection.event_id is None
    assert [e.field for e in rejection.errors] == ["event_id"]


def test_a_rejected_copy_does_not_block_a_later_valid_one() -> None:
    result = make_ingest().process([touchpoint(1, channel="fax"), touchpoint(1)], NOW)
    assert [r.reason for r in result.rejected] == ["invalid_field"]
    assert [str(e.event_id) for e in result.accepted] == [event_id(1)]
    assert result.duplicates == 0


@pytest.mark.parametrize("raw", ["a string", 42, 1.5, None, True, [touchpoint(1)]])
def test_non_objects_are_rejected_as_not_an_object(raw: Any) -> None:
    (rejection,) = make_ingest().process([raw], NOW).rejected
    assert rejection.reason == "not_an_object"
    assert rejection.raw == orjson.dumps(raw)
    assert rejection.event_id is None
    assert [e.field for e in rejection.errors] == ["(event)"]


@pytest.mark.parametrize(
    ("occurred_at", "accepted"),
    [
        ("2025-03-01T12:05:00+00:00", True),  # exactly at the tolerance
        ("2025-03-01T12:05:00.001+00:00", False),
        ("2025-03-01T14:04:59+02:00", True),  # 12:04:59 UTC
        ("2025-03-01T14:05:01+02:00", False),
        ("2026-03-01T12:00:00+00:00", False),
    ],
)
def test_future_timestamps_beyond_tolerance_are_rejected(occurred_at: str, accepted: bool) -> None:
    seen: dict[str, int] = {}
    raw = touchpoint(1, occurred_at=occurred_at)
    result = make_ingest(seen).process([raw], NOW)
    if accepted:
        assert len(result.accepted) == 1 and result.rejected == []
        return
    (rejection,) = result.rejected
    assert rejection.reason == "future_timestamp"
    assert rejection.event_id == event_id(1)
    assert rejection.raw == orjson.dumps(raw)
    assert result.accepted == [] and seen == {}


@pytest.mark.parametrize(
    ("size", "accepted"), [(MAX_EVENT_BYTES, True), (MAX_EVENT_BYTES + 1, False)]
)
def test_events_over_32kb_serialized_are_rejected_as_oversized(size: int, accepted: bool) -> None:
    seen: dict[str, int] = {}
    raw = event_of_size(1, size)
    result = make_ingest(seen).process([raw], NOW)
    if accepted:
        assert [len(f) for f in result.fragments] == [size]
        assert seen == {event_id(1): NOW_S}
        return
    (rejection,) = result.rejected
    assert rejection.reason == "oversized"
    assert rejection.event_id == event_id(1)
    assert rejection.raw == orjson.dumps(raw)
    assert str(size) in rejection.detail
    assert result.accepted == [] and seen == {}


# -- watermark ----------------------------------------------------------------------------


def test_max_occurred_ms_is_the_latest_accepted_event_time() -> None:
    raws = [
        touchpoint(1, occurred_at="2025-03-01T11:58:00+00:00"),
        touchpoint(2, occurred_at="2025-03-01T13:59:30.123456+02:00"),  # 11:59:30.123456Z
        touchpoint(3, occurred_at="2025-03-01T11:59:00+00:00"),
        touchpoint(4, occurred_at="2025-03-02T00:00:00+00:00"),  # rejected: future
        touchpoint(5, channel="fax", occurred_at="2025-03-01T11:59:59+00:00"),  # rejected
    ]
    assert make_ingest().process(raws, NOW).max_occurred_ms == 1_740_830_370_123


def test_max_occurred_ms_ignores_duplicates() -> None:
    ingest = make_ingest()
    ingest.process([touchpoint(1, occurred_at="2025-03-01T11:59:59+00:00")], NOW)
    result = ingest.process(
        [touchpoint(1, occurred_at="2025-03-01T11:59:59+00:00"), touchpoint(2)], NOW
    )
    assert result.max_occurred_ms == (NOW_S - 60) * 1000


@pytest.mark.parametrize("raws", [[], [touchpoint(1, channel="fax")], ["junk"]])
def test_max_occurred_ms_is_none_without_accepted_events(raws: list[Any]) -> None:
    assert make_ingest().process(raws, NOW).max_occurred_ms is None


# -- expiry -------------------------------------------------------------------------------


def at(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def test_expire_removes_ids_older_than_the_horizon() -> None:
    seen = {"a": 100, "b": 249, "c": 250, "d": 300}
    ingest = make_ingest(seen, horizon_s=1000)
    assert ingest.expire(at(1250)) == 2  # cutoff 250: exactly at the horizon is kept
    assert list(seen) == ["c", "d"]


def test_expire_scans_in_insertion_order_and_stops_at_the_first_fresh_id() -> None:
    seen = {"a": 100, "b": 900, "c": 50}
    ingest = make_ingest(seen, horizon_s=1000)
    assert ingest.expire(at(1250)) == 1
    assert list(seen) == ["b", "c"]


def test_expire_respects_the_limit_and_resumes_in_order() -> None:
    seen = {k: 10 for k in "abcde"} | {"f": 5000}
    ingest = make_ingest(seen, horizon_s=1000)
    assert ingest.expire(at(5000), limit=2) == 2
    assert list(seen) == ["c", "d", "e", "f"]
    assert ingest.expire(at(5000), limit=2) == 2
    assert ingest.expire(at(5000), limit=2) == 1
    assert ingest.expire(at(5000), limit=2) == 0
    assert list(seen) == ["f"]


def test_an_expired_id_is_accepted_again() -> None:
    ingest = make_ingest(horizon_s=3600)
    ingest.process([touchpoint(1)], NOW)
    assert ingest.expire(NOW + timedelta(hours=1)) == 0
    assert ingest.process([touchpoint(1)], NOW + timedelta(hours=1)).duplicates == 1
    later = NOW + timedelta(hours=1, seconds=1)
    assert ingest.expire(later) == 1
    assert len(ingest.process([touchpoint(1)], later).accepted) == 1


def test_late_arriving_channels_do_not_move_the_watermark() -> None:
    ingest = Ingest({}, timedelta(days=7), TOLERANCE, frozenset({"store", "call_center"}))
    raws = [
        touchpoint(1, channel="web", occurred_at="2025-03-01T11:00:00+00:00"),
        touchpoint(2, channel="store", occurred_at="2025-03-01T11:59:00+00:00"),
    ]
    assert ingest.process(raws, NOW).max_occurred_ms == (NOW_S - 3600) * 1000
    only_late = [touchpoint(3, channel="call_center", occurred_at="2025-03-01T11:59:00+00:00")]
    result = ingest.process(only_late, NOW)
    assert len(result.accepted) == 1 and result.max_occurred_ms is None


# -- the age bound -----------------------------------------------------

MAX_AGE = timedelta(days=730)  # the setting's default
OLDEST = "2023-03-02T12:00:00+00:00"  # NOW - MAX_AGE


@pytest.mark.parametrize(
    ("occurred_at", "accepted"),
    [
        (OLDEST, True),  # exactly at the bound
        ("2023-03-02T11:59:59.999+00:00", False),
        ("2023-03-02T13:59:59+02:00", False),  # 11:59:59 UTC
        ("0001-01-01T00:00:00+00:00", False),
        ("0001-01-01T00:00:00Z", False),
    ],
)
def test_event_times_older_than_the_bound_are_dead_lettered(
    occurred_at: str, accepted: bool
) -> None:
    seen: dict[str, int] = {}
    raw = touchpoint(1, occurred_at=occurred_at)
    result = make_ingest(seen).process([raw], NOW)
    if accepted:
        assert len(result.accepted) == 1 and result.rejected == []
        return
    (rejection,) = result.rejected
    assert rejection.reason == "old_timestamp"
    assert [e.field for e in rejection.errors] == ["occurred_at"]
    assert "730 days" in rejection.detail
    assert rejection.raw == orjson.dumps(raw)  # the evidence keeps the value ...
    # ... the words never repeat it (a dead letter's error repeats no input value)
    for text in (rejection.detail, *(e.message for e in rejection.errors)):
        assert occurred_at[:10] not in text
    assert result.accepted == [] and seen == {}


def test_a_raised_bound_admits_old_history() -> None:
    ingest = Ingest({}, timedelta(days=7), TOLERANCE, max_age=timedelta(days=365 * 10))
    raws = [touchpoint(1, occurred_at="2017-01-01T00:00:00+00:00"), touchpoint(2)]
    result = ingest.process(raws, NOW)
    assert [str(e.event_id) for e in result.accepted] == [event_id(1), event_id(2)]


def test_future_rejection_does_not_repeat_the_event_time() -> None:
    raw = touchpoint(1, occurred_at="2026-07-04T09:08:07+00:00")
    (rejection,) = make_ingest().process([raw], NOW).rejected
    assert rejection.reason == "future_timestamp"
    assert [e.field for e in rejection.errors] == ["occurred_at"]
    assert "2026-07-04" not in rejection.detail and "09:08:07" not in rejection.detail
