"""Global windows from partial ones (`friction_windows_merge`), and the friction state a
restarted stage reads back (`friction_windows_state`, `detector_state`)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest

from producers.simulator.config import SimConfig
from schemas.partitioning import partition_for
from stream_processors.core.friction_signals import FrictionMatcher
from stream_processors.friction.core import detector_state
from stream_processors.friction.core.detector import Detector, DetectorConfig
from stream_processors.friction.core.rules import Alert, FixedThreshold
from stream_processors.friction.core.series import FrictionSeries, default_person
from stream_processors.friction.core.window_merge import Partial, WindowMerger
from stream_processors.friction.core.window_state import (
    RecordedRepeats,
    RecordedWindows,
    recorded_series,
)
from stream_processors.friction.core.windows import Advance, TumblingWindows, WindowCounts
from tests.unit.friction.builders import START, Pipeline, ms, simulate

# A fixed threshold below the usual friction of the web: alerts that need no baseline.
DETECTOR = DetectorConfig(thresholds=(FixedThreshold("friction", "web:*", max_rate=0.02),))
SIZE = timedelta(minutes=5)
LATENESS = timedelta(minutes=30)
S = 300_000
PARTITIONS = 4


def json_round_trip(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


@pytest.fixture(scope="module")
def traffic() -> list[dict[str, Any]]:
    """Half a day of simulated touchpoints, arriving up to 3 minutes late."""
    config = SimConfig(customers=12_000, days=0.5, start=START, seed=5)
    events, _ = simulate(config)
    rng = random.Random(3)
    arrivals = sorted(
        (ms(e.occurred_at) + rng.randrange(180_000), n, e.event) for n, e in enumerate(events)
    )
    return [event for _, _, event in arrivals]


def batches(events: list[dict[str, Any]], size: int = 25) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


def series(windows: TumblingWindows) -> FrictionSeries:
    if isinstance(windows, RecordedWindows):
        return recorded_series(FrictionMatcher(Pipeline().mapping), windows)
    return FrictionSeries(FrictionMatcher(Pipeline().mapping), windows)


def watermark(batch: list[dict[str, Any]], clock: FrictionSeries, newest: int) -> int:
    return max([newest, *(clock.clock.ms(e) for e in batch)])


def final_counts(advances: list[Advance]) -> dict[tuple[Any, int], dict[str, int]]:
    latest: dict[tuple[Any, int], WindowCounts] = {}
    for advance in advances:
        for w in advance.windows:
            held = latest.get((w.key, w.start_ms))
            if held is None or w.version > held.version:
                latest[(w.key, w.start_ms)] = w
    return {k: dict(w.counts) for k, w in latest.items() if any(w.counts.values())}


def test_partitions_merged_are_the_windows_of_one(traffic: list[dict[str, Any]]) -> None:
    """Events split by person over 4 partitions, each closing its own windows; the merged
    windows (late versions included) hold what one set of windows over all events holds,
    and the detector decides the same on both."""
    one = series(TumblingWindows(SIZE, LATENESS))
    parts = [series(RecordedWindows(SIZE, LATENESS)) for _ in range(PARTITIONS)]
    merger = WindowMerger(PARTITIONS, SIZE, LATENESS)
    single: list[Advance] = []
    merged: list[Advance] = []
    newest = 0
    for batch in batches(traffic):
        for event in batch:
            one.count(event)
            person = default_person(event) or ""
            parts[partition_for(person.encode(), PARTITIONS)].count(event)
        newest = watermark(batch, one, newest)
        single.append(one.advance(newest - 120_000))
        for p, part in enumerate(parts):
            advance = part.advance(newest - 120_000)
            partials = [Partial.of(w) for w in advance.windows]
            assert isinstance(part.windows, RecordedWindows)
            merged.append(merger.apply(p, partials, part.windows.frontier_ms))
    assert final_counts(merged) == final_counts(single)
    assert sum(1 for a in single for w in a.windows if w.previous is not None) > 0  # late ones
    assert _alerts(single) == _alerts(merged)
    assert [s for a in merged for s in a.closed] == [s for a in single for s in a.closed]


def _alerts(advances: list[Advance]) -> list[tuple[str, bool]]:
    detector = Detector(DETECTOR)
    found: list[Alert] = []
    for advance in advances:
        found += detector.process(advance)
    assert found
    return sorted((a.alert_id, a.retracted) for a in found)


def partial(
    start_index: int, counts: dict[str, int], previous: dict[str, int] | None = None
) -> Partial:
    return Partial(("friction", "web:/x"), start_index * S, counts, previous, False)


def test_a_window_closes_once_every_partition_has() -> None:
    merger = WindowMerger(2, SIZE, LATENESS)
    first = merger.apply(0, [partial(0, {"exposures": 3})], 1 * S)
    assert not first.windows and not len(first.closed)
    second = merger.apply(1, [partial(0, {"exposures": 4, "error": 1})], 1 * S)
    assert list(second.closed) == [0]
    (window,) = second.windows
    assert (window.version, window.counts, window.previous) == (
        1,
        {"exposures": 7, "error": 1},
        None,
    )


def test_a_late_partial_reemits_the_window_with_what_it_replaces() -> None:
    merger = WindowMerger(2, SIZE, LATENESS)
    merger.apply(0, [partial(0, {"exposures": 3})], 1 * S)
    merger.apply(1, [partial(0, {"exposures": 4})], 1 * S)
    late = merger.apply(1, [partial(0, {"exposures": 6, "error": 2}, {"exposures": 4})], None)
    (window,) = late.windows
    assert (window.version, window.counts, window.previous) == (
        2,
        {"exposures": 9, "error": 2},
        {"exposures": 7},
    )
    assert not len(late.closed)


def test_partials_past_the_lateness_are_dropped() -> None:
    merger = WindowMerger(1, SIZE, LATENESS)
    merger.apply(0, [partial(0, {"exposures": 1})], 20 * S)
    dropped = merger.apply(0, [partial(0, {"exposures": 2}, {"exposures": 1})], None)
    assert not dropped.windows
    assert merger.late_dropped == 1


def test_the_merger_reads_back_what_it_wrote() -> None:
    merger = WindowMerger(2, SIZE, LATENESS)
    merger.apply(0, [partial(0, {"exposures": 3}), partial(1, {"exposures": 1})], 1 * S)
    merger.apply(1, [partial(0, {"exposures": 4})], 1 * S)
    touched, _ = merger.take_changes()
    restored = WindowMerger(2, SIZE, LATENESS)
    restored.restore(
        json_round_trip(merger.snapshot_meta()),
        {s: json_round_trip(merger.snapshot_start(s)) for s in touched},
    )
    for m in (merger, restored):
        m.apply(0, [partial(1, {"exposures": 2}, {"exposures": 1})], 2 * S)
    a = merger.apply(1, [partial(1, {"exposures": 5})], 2 * S)
    b = restored.apply(1, [partial(1, {"exposures": 5})], 2 * S)
    assert a == b and a.windows[0].counts == {"exposures": 7}


def test_windows_and_repeats_read_back_what_they_wrote(traffic: list[dict[str, Any]]) -> None:
    """Half the traffic, a snapshot, then the rest on both: the same windows come out."""
    windows = RecordedWindows(SIZE, LATENESS)
    repeats = RecordedRepeats(7 * 86_400_000)
    live = recorded_series(FrictionMatcher(Pipeline().mapping), windows, repeats)
    half = len(traffic) // 2
    newest = 0
    for batch in batches(traffic[:half]):
        for event in batch:
            live.count(event)
        newest = watermark(batch, live, newest)
        live.advance(newest - 120_000)
    touched, _ = windows.take_changes()
    copy_windows = RecordedWindows(SIZE, LATENESS)
    copy_windows.restore(
        json_round_trip(windows.snapshot_meta()),
        {s: json_round_trip(windows.snapshot_start(s)) for s in touched},
    )
    copy_repeats = RecordedRepeats(7 * 86_400_000)
    for person in repeats.take_changes():
        snapshot = repeats.snapshot_person(person)
        if snapshot is not None:
            copy_repeats.restore_person(person, json_round_trip(snapshot))
    copy = recorded_series(FrictionMatcher(Pipeline().mapping), copy_windows, copy_repeats)
    assert len(copy_repeats) == len(repeats) > 0
    for batch in batches(traffic[half:]):
        for event in batch:
            assert live.count(event) == copy.count(event)
        newest = watermark(batch, live, newest)
        assert live.advance(newest - 120_000) == copy.advance(newest - 120_000)


def test_a_restored_detector_decides_as_the_one_it_was_saved_from(
    traffic: list[dict[str, Any]],
) -> None:
    windows = TumblingWindows(SIZE, LATENESS)
    counter = series(windows)
    advances = []
    newest = 0
    for batch in batches(traffic):
        for event in batch:
            counter.count(event)
        newest = watermark(batch, counter, newest)
        advances.append(counter.advance(newest - 120_000))
    half = len(advances) // 2
    detector = Detector(DETECTOR)
    for advance in advances[:half]:
        detector.process(advance)
    rows = json_round_trip(dict(detector_state.rows(detector)))
    restored = detector_state.restore(DETECTOR, rows)
    assert json_round_trip(dict(detector_state.rows(restored))) == rows
    ahead = [a for advance in advances[half:] for a in detector.process(advance)]
    again = [a for advance in advances[half:] for a in restored.process(advance)]
    assert ahead == again and ahead
    assert dict(detector_state.rows(detector)) == dict(detector_state.rows(restored))
