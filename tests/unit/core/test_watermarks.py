"""stream_processors.core.watermarks: a partition's watermark, and a stage's as the minimum over its
sources."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_processors.core.watermarks import (
    SourceWatermarks,
    idle_watermark,
    partition_watermark,
)


def test_no_watermark_until_every_source_has_spoken() -> None:
    marks = SourceWatermarks(3)
    assert marks.hear(0, 100) is None and marks.hear(2, 50) is None
    assert marks.missing() == [1]
    assert marks.hear(1, 70) == 50


def test_the_slowest_source_holds_time_back_and_sources_never_go_back() -> None:
    marks = SourceWatermarks(2)
    marks.hear(0, 100)
    assert marks.hear(1, 40) == 40
    assert marks.hear(0, 500) == 40  # a fast source does not move it
    assert marks.hear(1, 30) == 40  # a source never moves back
    assert marks.hear(1, 600) == 500


def test_a_snapshot_restores_the_same_state_and_drops_sources_that_no_longer_exist() -> None:
    marks = SourceWatermarks(3)
    for source, mark in ((0, 5), (1, 9), (2, 7)):
        marks.hear(source, mark)
    assert SourceWatermarks.restore(3, marks.snapshot()).low == 5
    fewer = SourceWatermarks.restore(2, marks.snapshot())
    assert fewer.low == 5 and fewer.missing() == []


def test_sources_outside_the_range_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        SourceWatermarks(2).hear(2, 1)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1_000)), max_size=60))
def test_the_watermark_is_the_minimum_of_each_sources_maximum(
    heard: list[tuple[int, int]],
) -> None:
    marks = SourceWatermarks(4)
    best: dict[int, int] = {}
    for source, mark in heard:
        low = marks.hear(source, mark)
        best[source] = max(best.get(source, mark), mark)
        assert low == (min(best.values()) if len(best) == 4 else None)


@pytest.mark.parametrize(
    ("previous", "newest", "declared", "expected"),
    [
        (None, None, None, None),  # nothing known yet
        (None, 10_000, None, 9_000),  # newest event time minus the lateness
        (9_500, 10_000, None, 9_500),  # never moves back
        (None, 10_000, 12_000, 12_000),  # a later heartbeat counts
        (None, None, 99_000, 50_000),  # but never past the clock-skew ceiling
        (60_000, None, 99_000, 60_000),
    ],
)
def test_a_partition_watermark_is_the_newest_time_less_lateness_or_a_capped_heartbeat(
    previous: int | None, newest: int | None, declared: int | None, expected: int | None
) -> None:
    assert (
        partition_watermark(previous, newest, declared, lateness_ms=1_000, ceiling_ms=50_000)
        == expected
    )


# -- the idle advance ------------------------------------------------------

MIN = 60_000
LATENESS, IDLE = 2 * MIN, 1 * MIN
NOW_MS = 1_740_830_400_000


@pytest.mark.parametrize(
    ("event_time_behind_ms", "moves"),
    [
        (0, False),  # already at the clock: nothing to do
        (IDLE, True),  # went quiet a minute ago
        (LATENESS + IDLE, True),  # exactly at the edge of "near"
        (LATENESS + IDLE + 1, False),
        (30 * 24 * 60 * MIN, False),  # replaying last month: never pushed to the present
    ],
)
def test_an_idle_partition_follows_the_clock_only_when_its_event_time_is_near_it(
    event_time_behind_ms: int, moves: bool
) -> None:
    watermark = NOW_MS - event_time_behind_ms - LATENESS
    target = idle_watermark(watermark, NOW_MS, lateness_ms=LATENESS, idle_ms=IDLE)
    assert target == (NOW_MS - LATENESS if moves else None)


def test_a_partition_that_saw_no_event_follows_the_clock() -> None:
    assert idle_watermark(None, NOW_MS, lateness_ms=LATENESS, idle_ms=IDLE) == NOW_MS - LATENESS


@given(
    st.integers(-(10**13), 10**13),
    st.integers(0, 10**13),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
)
def test_the_idle_advance_never_moves_back_and_never_skips_a_far_partition(
    watermark: int, now: int, lateness: int, idle: int
) -> None:
    target = idle_watermark(watermark, now, lateness_ms=lateness, idle_ms=idle)
    if target is not None:
        assert target > watermark and target == now - lateness
        assert now - (watermark + lateness) <= lateness + idle
