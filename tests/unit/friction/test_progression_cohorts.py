"""The progression test's change point among entry cohorts (the silent stall and
the sustained moderate rise at checkout), on `Progressions` alone: a seeded checkout whose
entrants from some moment on stop moving on while older entrants' late movers still
complete, the moderate version of it, and the null, whose false alarms the threshold bounds.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from stream_processors.friction.core import detector_state
from stream_processors.friction.core.baselines import BaselineConfig, BaselineParams
from stream_processors.friction.core.detector import Detector, DetectorConfig
from stream_processors.friction.core.progression import Progressions, StageProgress
from stream_processors.friction.core.sequential import CusumConfig, Run
from stream_processors.friction.core.series import ENTERED, LAG_NAMES, PROGRESS_LAGS

MINUTE = 60_000
WINDOW = 5 * MINUTE
T0 = 1_740_960_000_000
SCOPE = "purchase:checkout:web"
WARMUP = 300  # windows of normal traffic before anything is tested


def checkout(
    rng: random.Random,
    windows: int,
    *,
    per_window: float,
    change: tuple[int, int, float] | None = None,
) -> list[Counter[str]]:
    """Stage window counts of a checkout: `per_window` entrants a window (Poisson), 70% of
    whom move on, 70% of those within minutes (log-normal, median 4) and 30% after 21-51
    minutes (a card fetched, a bank app opened). `change` = (first, last window, kept):
    entrants of those windows (and of the last 5 minutes before, mid-checkout then) move on
    only `kept` as often."""
    counts = [Counter[str]() for _ in range(windows)]
    for index in range(windows):
        for _ in range(_poisson(rng, per_window)):
            at = index * WINDOW + rng.randrange(WINDOW)
            counts[index][ENTERED] += 1
            if rng.random() >= 0.7:
                continue
            if change is not None:
                first, last, kept = change
                if first * WINDOW - 5 * MINUTE <= at < (last + 1) * WINDOW and rng.random() >= kept:
                    continue
            if rng.random() < 0.7:
                took = rng.lognormvariate(math.log(4 * MINUTE), 0.6)
            else:
                took = rng.uniform(21 * MINUTE, 51 * MINUTE)
            lag = int((at + took) // WINDOW) - index
            if index + lag < windows and lag < PROGRESS_LAGS:
                counts[index + lag][LAG_NAMES[lag]] += 1
    return counts


def _poisson(rng: random.Random, mean: float) -> int:
    n, p, limit = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p < limit:
            return n
        n += 1


def progressions(h: float = CusumConfig().h) -> Progressions:
    params = BaselineParams(BaselineConfig(season_buckets=1))
    return Progressions(params, WINDOW, CusumConfig(h=h, critical_h=max(h, CusumConfig().h)))


def first_alarm(counts: list[Counter[str]], after: int, h: float = CusumConfig().h) -> int | None:
    """The first window from `after` on whose close the test alarms (as the detector pages:
    at or above h, at its run's highest)."""
    progress = progressions(h)
    for index, window in enumerate(counts):
        found = progress.close(SCOPE, T0 + index * WINDOW, window)
        if index >= after and found.tested and found.at_peak and found.value >= h:
            return index
    return None


@pytest.mark.parametrize("seed", range(6))
def test_a_stall_to_10_percent_at_17_a_window_alarms_within_3_windows(seed: int) -> None:
    """Entrants from window W on move on at 10% of normal: the test alarms at the close of
    W + 2 at the latest (15 minutes of event time), and not before W. The old cohorts' late
    movers still complete meanwhile: summed per window they hid the young cohorts' stop."""
    rng = random.Random(seed)
    start = WARMUP + rng.randrange(12)
    counts = checkout(rng, start + 12, per_window=17.0, change=(start, start + 11, 0.1))
    found = first_alarm(counts, after=0)
    assert found is not None and start <= found <= start + 2, found


def test_a_sustained_30_to_72_percent_drop_off_at_20_a_window_is_found_within_4_windows() -> None:
    """Progression 70% -> 28% (drop-off 30% -> 72%) for the entrants of 4 windows, 20 a
    window: by the close of the 4th window the test has seen only part of their progressions
    (30% of movers take 21-51 minutes), and its evidence is then about h on average, so a
    majority of 30 seeded runs alarm by then, none before the change. (Summed per window
    instead, 8 of these 30 did.)"""
    within = 0
    for seed in range(30):
        rng = random.Random(100 + seed)
        start = WARMUP + rng.randrange(12)
        counts = checkout(rng, start + 12, per_window=20.0, change=(start, start + 3, 0.4))
        found = first_alarm(counts, after=0)
        assert found is None or found >= start, (seed, found)
        within += found is not None and found <= start + 3
    assert within >= 15, within


def test_no_change_alarms_at_most_as_often_as_the_threshold_allows() -> None:
    """The null, 10,000 windows (35 days) at 17 entrants a window, at a threshold low
    enough to alarm: after each alarm the test starts again, and the mean run to a false
    alarm must be at least e^h windows (both designs and every change point included)."""
    h, windows = math.log(50.0), 10_000
    rng = random.Random(7)
    counts = checkout(rng, WARMUP + windows, per_window=17.0)
    progress = progressions(h)
    alarms = 0
    for index, window in enumerate(counts):
        found = progress.close(SCOPE, T0 + index * WINDOW, window)
        if index >= WARMUP and found.tested and found.value >= h:
            alarms += 1
            _start_again(progress.stages[SCOPE])
    assert 0 < alarms <= windows / math.exp(h), alarms


def _start_again(stage: StageProgress) -> None:
    stage.evidence.clear()
    stage.carry = [[0.0, 0, 0.0, 0] for _ in stage.carry]
    stage.run = Run()


def test_the_cohorts_evidence_is_kept_in_the_detectors_state() -> None:
    """Each cohort's evidence and the carried runs restore as they were; a row written
    before them (three elements) restores with none, and the test goes on from there."""
    detector = Detector(DetectorConfig(baseline=BaselineConfig(season_buckets=1)))
    counts = checkout(
        random.Random(11), WARMUP + 40, per_window=17.0, change=(WARMUP, WARMUP + 39, 0.1)
    )
    for index, window in enumerate(counts[: WARMUP + 20]):
        detector.progressions.close(SCOPE, T0 + index * WINDOW, window)
    stage = detector.progressions.stages[SCOPE]
    assert stage.evidence and any(c[0] > 0.0 for c in stage.carry)
    rows = dict(detector_state.rows(detector))
    restored = detector_state.restore(detector.config, rows)
    again = restored.progressions.stages[SCOPE]
    assert (again.evidence, again.carry) == (stage.evidence, stage.carry)
    older = {k: v[:3] if k.startswith(detector_state.PROGRESS) else v for k, v in rows.items()}
    before = detector_state.restore(detector.config, older).progressions
    assert before.stages[SCOPE].evidence == {}
    for index in range(WARMUP + 20, WARMUP + 40):
        found = before.close(SCOPE, T0 + index * WINDOW, counts[index])
    assert found.value >= CusumConfig().h  # the stall goes on and is found again


def test_the_progression_threshold_finds_a_stall_a_window_earlier() -> None:
    """The progression test's own threshold (ln 10^4): of 30 seeded stalls to 10% at 17
    entrants a window, most alarm at the close of the change's second window (W + 1, ten
    minutes of entrants), more of them than at the counts' h = ln 10^6; none before W."""
    cusum = CusumConfig()
    assert cusum.progression_h == pytest.approx(math.log(1e4)) and cusum.progression_h < cusum.h
    early = {cusum.h: 0, cusum.progression_h: 0}
    for seed in range(30):
        rng = random.Random(200 + seed)
        start = WARMUP + rng.randrange(12)
        counts = checkout(rng, start + 4, per_window=17.0, change=(start, start + 3, 0.1))
        for h in early:
            found = first_alarm(counts, after=0, h=h)
            assert found is None or found >= start, (seed, h, found)
            early[h] += found is not None and found <= start + 1
    assert early[cusum.progression_h] >= 27 and early[cusum.progression_h] > early[cusum.h], early
