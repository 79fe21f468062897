"""stream_processors.core.watermarks: a partition's watermark, and a stage's as the minimum over its
sources."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_processors.core.watermarks import SourceWatermarks, partition_watermark


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
