"""Invariants of the tumbling windows: whatever the arrival order within the allowed
lateness, the last version of every window equals a batch count of its events; every
version replaces the one before it exactly; memory stays bounded."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processors.friction.core.windows import TumblingWindows, WindowCounts, WindowKey

SIZE = 5 * 60_000
WINDOW_LATENESS = 20 * 60_000  # how long a closed window takes late events
PIPELINE_LATENESS = 2 * 60_000  # the watermark trails the newest event time by this much
KEYS: tuple[WindowKey, ...] = (("friction", "web:/"), ("friction", "app:home"), ("volume", "pos"))
NAMES = ("exposures", "error", "events")
Where = tuple[WindowKey, int]
Versions = dict[Where, tuple[int, dict[str, int]]]


@dataclass(frozen=True)
class Event:
    key: WindowKey
    at_ms: int
    name: str
    delay_ms: int  # how long after its event time it arrives


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    count = draw(st.integers(min_value=1, max_value=120))
    # Any delay below pipeline lateness + window lateness keeps an event inside the
    # allowed lateness: the watermark at its arrival is at most (its time + delay) minus
    # the pipeline lateness, and its window ends after its time.
    most = PIPELINE_LATENESS + WINDOW_LATENESS - 1
    return [
        Event(
            key=draw(st.sampled_from(KEYS)),
            at_ms=draw(st.integers(min_value=0, max_value=3 * 3_600_000)),
            name=draw(st.sampled_from(NAMES)),
            delay_ms=draw(st.integers(min_value=0, max_value=most)),
        )
        for _ in range(count)
    ]


def replay(events: list[Event], every: int) -> dict[Where, dict[str, int]]:
    """Feed events in arrival order, advancing the watermark every `every` events; check
    each version against the one before; return the last version of every window."""
    windows = TumblingWindows(timedelta(milliseconds=SIZE), timedelta(milliseconds=WINDOW_LATENESS))
    last: Versions = {}
    newest = 0
    arrivals = sorted(events, key=lambda e: (e.at_ms + e.delay_ms, e.at_ms))
    for n, event in enumerate(arrivals, start=1):
        assert windows.add(event.key, event.at_ms, (event.name,))
        newest = max(newest, event.at_ms)
        if n % every == 0:
            _check(windows.advance(newest - PIPELINE_LATENESS).windows, last)
    _check(windows.advance(newest + SIZE + WINDOW_LATENESS).windows, last)  # close all
    assert windows.open_windows() == 0 and windows.late_dropped == 0
    return {where: counts for where, (_, counts) in last.items()}


def _check(emitted: tuple[WindowCounts, ...], last: Versions) -> None:
    for window in emitted:
        where = (window.key, window.start_ms)
        version, counts = last.get(where, (0, {}))
        assert window.version == version + 1
        if version:
            assert window.previous == counts
        else:
            assert window.previous in (None, {})
        last[where] = (window.version, dict(window.counts))


def batch(events: list[Event]) -> dict[Where, dict[str, int]]:
    counts: dict[Where, Counter[str]] = {}
    for e in events:
        counts.setdefault((e.key, e.at_ms - e.at_ms % SIZE), Counter())[e.name] += 1
    return {where: dict(c) for where, c in counts.items()}


@settings(max_examples=150, deadline=None)
@given(streams(), st.integers(min_value=1, max_value=10), st.randoms(use_true_random=False))
def test_last_versions_equal_the_batch_count_in_any_order(
    events: list[Event], every: int, rnd: random.Random
) -> None:
    expected = batch(events)
    assert replay(events, every) == expected
    # Another arrival order, with other delays inside the same bound, ends the same way.
    most = PIPELINE_LATENESS + WINDOW_LATENESS - 1
    shuffled = [
        Event(e.key, e.at_ms, e.name, rnd.randint(0, most)) for e in rnd.sample(events, len(events))
    ]
    assert replay(shuffled, every) == expected


@settings(max_examples=100, deadline=None)
@given(streams())
def test_too_late_events_are_refused_never_miscounted(events: list[Event]) -> None:
    """Arrivals beyond the allowed lateness: what was emitted never includes a refused
    event, and every accepted one is in the last version of its window."""
    windows = TumblingWindows(timedelta(milliseconds=SIZE), timedelta(minutes=0))
    accepted: list[Event] = []
    last: Versions = {}
    newest = 0
    for event in sorted(events, key=lambda e: e.at_ms + 4 * e.delay_ms):
        if windows.add(event.key, event.at_ms, (event.name,)):
            accepted.append(event)
        newest = max(newest, event.at_ms)
        _check(windows.advance(newest).windows, last)
    _check(windows.advance(newest + SIZE).windows, last)
    assert windows.late_dropped == len(events) - len(accepted)
    assert {where: counts for where, (_, counts) in last.items()} == batch(accepted)
