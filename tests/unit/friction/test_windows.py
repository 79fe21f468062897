"""Tumbling event-time windows: closed by the watermark, late events re-emit a new version
with the counts it replaces, windows past their allowed lateness are gone; and what one
touchpoint or stage report counts in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.friction import Signal, load_friction_mapping
from stream_processors.core.friction_signals import FrictionMatcher, RepeatContacts
from stream_processors.friction.core.series import (
    DROPPED,
    ENTERED,
    EventClock,
    FrictionSeries,
    count_stage,
    event_time_ms,
)
from stream_processors.friction.core.windows import TumblingWindows, WindowCounts, WindowKey

MIN = 60_000
DAY_MS = 86_400_000
DEFAULTS = Path(__file__).resolve().parents[3] / "deploy" / "friction" / "defaults.toml"
KEY = ("friction", "web:/checkout")
OTHER = ("volume", "web:web-shop")


def windows(lateness_min: int = 30) -> TumblingWindows:
    return TumblingWindows(timedelta(minutes=5), timedelta(minutes=lateness_min))


def by_start(emitted: tuple[WindowCounts, ...]) -> dict[int, WindowCounts]:
    return {w.start_ms // MIN: w for w in emitted}


def test_a_window_closes_when_the_watermark_passes_its_end() -> None:
    w = windows()
    w.add(KEY, 1 * MIN, ("exposures",))
    w.add(KEY, 4 * MIN + 59_999, ("exposures", "error"))
    w.add(KEY, 5 * MIN, ("exposures",))
    assert w.advance(5 * MIN - 1).windows == ()
    closed = w.advance(5 * MIN)
    (first,) = closed.windows
    assert (first.start_ms, first.end_ms, first.version) == (0, 5 * MIN, 1)
    assert first.counts == {"exposures": 2, "error": 1}
    assert first.previous is None and not first.backfill
    assert list(closed.closed) == [0]
    assert by_start(w.advance(10 * MIN).windows)[5].counts == {"exposures": 1}


def test_empty_windows_are_reported_as_closed_starts() -> None:
    w = windows()
    w.add(KEY, 0, ("exposures",))
    w.advance(5 * MIN)
    silent = w.advance(30 * MIN)
    assert silent.windows == ()
    assert [s // MIN for s in silent.closed] == [5, 10, 15, 20, 25]


def test_a_late_event_reemits_its_window_with_the_previous_counts() -> None:
    w = windows()
    w.add(KEY, 2 * MIN, ("exposures",))
    w.add(OTHER, 2 * MIN, ("events",))
    w.advance(12 * MIN)
    assert w.add(KEY, 3 * MIN, ("exposures", "error"))
    late = w.advance(12 * MIN)  # the watermark need not move for a re-emission
    (again,) = late.windows  # only the changed key of that window
    assert again.key == KEY and again.version == 2
    assert again.counts == {"exposures": 2, "error": 1}
    assert again.previous == {"exposures": 1}
    assert list(late.closed) == []
    assert w.advance(13 * MIN).windows == ()  # nothing changed since


def test_late_first_events_of_a_window_that_closed_empty() -> None:
    w = windows()
    w.add(KEY, 0, ("exposures",))
    w.advance(20 * MIN)
    w.add(KEY, 7 * MIN, ("exposures",))
    (late,) = w.advance(20 * MIN).windows
    assert (late.start_ms, late.version, late.previous) == (5 * MIN, 1, {})


def test_events_past_the_allowed_lateness_are_refused_and_counted() -> None:
    w = windows(lateness_min=10)
    w.add(KEY, 0, ("exposures",))
    w.advance(14 * MIN)  # window [0, 5) is kept until 5 + 10 minutes
    assert w.add(KEY, 1 * MIN, ("exposures",))
    w.advance(15 * MIN)
    assert w.open_windows() == 0
    assert not w.add(KEY, 1 * MIN, ("exposures",))
    assert w.late_dropped == 1
    # Its last version carried both events; nothing is emitted for the refused one.
    assert w.advance(16 * MIN).windows == ()


def test_memory_is_bounded_by_the_lateness() -> None:
    w = windows(lateness_min=30)
    for minute in range(0, 24 * 60, 1):
        w.add(KEY, minute * MIN, ("exposures",))
        w.add(OTHER, minute * MIN, ("events",))
        w.advance(minute * MIN)
    # Windows from the last 30 minutes, the open one and its keys: never the whole day.
    assert w.open_windows() <= 2 * (30 // 5 + 2)


def test_a_window_is_backfill_only_when_every_event_was() -> None:
    w = windows()
    w.add(KEY, 0, ("exposures",), backfill=True)
    w.add(OTHER, 0, ("events",), backfill=True)
    w.add(OTHER, 1, ("events",))
    closed = {c.key: c for c in w.advance(5 * MIN).windows}
    assert closed[KEY].backfill and not closed[OTHER].backfill


def test_a_retraction_takes_a_count_back() -> None:
    w = windows()
    w.add(KEY, 0, ("dropped",))
    w.advance(5 * MIN)
    w.add(KEY, 0, ("dropped",), amount=-1)
    (again,) = w.advance(5 * MIN).windows
    assert again.counts == {"dropped": 0} and again.version == 2


def test_a_watermark_going_back_changes_nothing() -> None:
    w = windows()
    w.add(KEY, 7 * MIN, ("exposures",))
    assert by_start(w.advance(10 * MIN).windows)[5].version == 1
    back = w.advance(2 * MIN)
    assert back.windows == () and list(back.closed) == [] and back.watermark_ms == 10 * MIN


def test_windows_align_on_epoch_boundaries_whatever_the_first_event() -> None:
    w = windows()
    w.add(KEY, 123 * MIN + 17, ("exposures",))
    (only,) = w.advance(200 * MIN).windows
    assert only.start_ms == 120 * MIN and only.end_ms == 125 * MIN


@pytest.mark.parametrize(("size", "lateness"), [(0, 5), (5, -1)])
def test_bad_sizes_are_refused(size: int, lateness: int) -> None:
    with pytest.raises(ValueError, match="window size"):
        TumblingWindows(timedelta(minutes=size), timedelta(minutes=lateness))


# -- what one event counts in (friction_series) --------------------------------------------------


def series(max_touchpoints: int = 5_000) -> FrictionSeries:
    mapping = load_friction_mapping(DEFAULTS)
    return FrictionSeries(
        FrictionMatcher(mapping),
        windows(),
        RepeatContacts(7 * DAY_MS),
        max_touchpoints=max_touchpoints,
    )


def touchpoint(minute: int, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "channel": "web",
        "source": "web-shop",
        "event_type": "checkout_step",
        "occurred_at": f"2025-03-03T10:{minute:02d}:30.250Z",
        "identity": {"anonymous_id": "a1", "customer_id": None},
        "touchpoint": "/checkout",
        "properties": {},
    }
    return {**doc, **fields}


def closed(s: FrictionSeries, minute: int) -> dict[WindowKey, dict[str, int]]:
    return {w.key: dict(w.counts) for w in s.advance(T0 + minute * MIN).windows}


T0 = 1_740_996_000_000  # 2025-03-03T10:00:00Z


def test_an_event_counts_in_its_source_touchpoint_and_channel() -> None:
    s = series()
    assert s.count(touchpoint(1, properties={"error": "payment_declined"})) == (
        Signal.PAYMENT_DECLINED,
    )
    s.count(touchpoint(2))
    s.count(touchpoint(3, event_type="error", properties={"http_status": 503}))  # no exposure
    s.count(touchpoint(4, event_type="identify", touchpoint=None))  # neither
    assert closed(s, 5) == {
        ("volume", "web:web-shop"): {"events": 4},
        ("friction", "web:*"): {"exposures": 2, "payment_declined": 1, "friction": 2, "error": 1},
        ("friction", "web:/checkout"): {
            "exposures": 2,
            "payment_declined": 1,
            "friction": 2,
            "error": 1,
        },
    }


def test_positive_moments_are_counted_apart_from_friction() -> None:
    s = series()
    s.count(touchpoint(1, event_type="order_completed", touchpoint="/checkout/done"))
    assert closed(s, 5)[("friction", "web:/checkout/done")] == {
        "exposures": 1,
        "order_completed": 1,
    }


def test_touchpoints_beyond_the_cap_count_channel_wide_only() -> None:
    s = series(max_touchpoints=2)
    for n in range(4):
        s.count(touchpoint(1, touchpoint=f"/product/{n}"))
    keys = set(closed(s, 5))
    assert ("friction", "web:/product/1") in keys and ("friction", "web:/product/2") not in keys
    assert s.overflow == 2


def test_a_late_earlier_contact_re_emits_the_later_ones_window() -> None:
    s = series()

    def call(day: int) -> dict[str, Any]:
        return touchpoint(
            0,
            channel="call_center",
            source="genesys",
            event_type="contact_ended",
            touchpoint="queue:billing",
            identity={"phone_hash": "p1"},
            occurred_at=f"2025-03-{day:02d}T10:00:00Z",
        )

    s.windows = TumblingWindows(timedelta(minutes=5), timedelta(days=10))
    later = T0 + 6 * DAY_MS + 10 * MIN
    assert s.count(call(9)) == ()
    s.advance(later)
    assert s.count(call(3)) == ()  # arrives six days late; the 9th becomes its repeat
    again = {(w.key, w.start_ms): w for w in s.advance(later).windows}
    ninth = again[(("friction", "call_center:queue:billing"), T0 + 6 * DAY_MS)]
    assert ninth.version == 2 and ninth.counts["repeat_contact"] == 1
    assert s.count(call(5)) == (Signal.REPEAT_CONTACT,)


def test_stage_counts_per_channel_and_for_all() -> None:
    w = windows()
    count_stage(w, "purchase", "checkout", "web", what=ENTERED, at_ms=T0)
    count_stage(w, "purchase", "checkout", "app", what=ENTERED, at_ms=T0)
    count_stage(w, "purchase", "checkout", "web", what=DROPPED, at_ms=T0)
    count_stage(w, "purchase", "checkout", "web", what=DROPPED, at_ms=T0, amount=-1)
    got = {c.key: dict(c.counts) for c in w.advance(T0 + 5 * MIN).windows}
    assert got == {
        ("stage", "purchase:checkout:web"): {"entered": 1, "dropped": 0},
        ("stage", "purchase:checkout:app"): {"entered": 1},
        ("stage", "purchase:checkout:*"): {"entered": 2, "dropped": 0},
    }


@pytest.mark.parametrize(
    "text",
    [
        "2025-03-03T10:15:00Z",
        "2025-03-03T10:15:00.5Z",
        "2025-03-03T10:15:00.123456Z",
        "2025-03-03T10:15:00.999+00:00",
        "2025-03-03T11:15:00.25+01:00",
        "2025-03-03T10:15:00",  # naive: read as local time by fromisoformat, both ways alike
    ],
)
def test_the_event_clock_fast_path_agrees_with_fromisoformat(text: str) -> None:
    clock = EventClock(max_cached=2)
    for _ in range(3):  # cold, cached, and after the cache was cleared
        assert clock.ms({"occurred_at": text}) == event_time_ms({"occurred_at": text})
        clock.ms({"occurred_at": "2025-01-01T00:00:00Z"})
        clock.ms({"occurred_at": "2025-01-02T00:00:00Z"})


def test_stage_windows_are_backfill_only_where_the_traffic_was() -> None:
    """Drop-offs carry no backfill flag: a stage window follows the events of its start, and
    where there were none it stays live (a quiet night must not silence a drop-off alert)."""
    windows = TumblingWindows(timedelta(minutes=5), timedelta(0), frozenset({"stage"}))
    stage: WindowKey = ("stage", "purchase:checkout:web")
    for start, backfill in ((0, True), (5 * MIN, False)):
        windows.add(("volume", "web:site"), start, ("events",), backfill=backfill)
        windows.add(stage, start + MIN, ("dropped",))
    windows.add(stage, 10 * MIN, ("dropped",))  # nothing else in that window
    closed = {(w.key[0], w.start_ms): w.backfill for w in windows.advance(15 * MIN).windows}
    assert closed == {
        ("volume", 0): True,
        ("stage", 0): True,
        ("volume", 5 * MIN): False,
        ("stage", 5 * MIN): False,
        ("stage", 10 * MIN): False,
    }
