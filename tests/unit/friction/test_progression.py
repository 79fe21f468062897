"""Progression in flight and evidence over the run of windows:
the likelihood ratios against brute-force pmfs, the curve's hazard against its definition,
and seeded scenarios at realistic volume through windows, detector and incidents."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest

from stream_processors.friction.alerts.core.incidents import IncidentConfig, Incidents
from stream_processors.friction.core import detector_state
from stream_processors.friction.core.baselines import BaselineConfig, BaselineParams
from stream_processors.friction.core.detector import Detector, DetectorConfig
from stream_processors.friction.core.progression import Progressions
from stream_processors.friction.core.rules import Alert, Series
from stream_processors.friction.core.sequential import (
    CusumConfig,
    Run,
    binomial_llr,
    odds_shift,
    poisson_llr,
)
from stream_processors.friction.core.series import (
    DROPPED,
    ENTERED,
    LAG_NAMES,
    count_progress,
    count_stage,
)
from stream_processors.friction.core.windows import TumblingWindows

MINUTE = 60_000
WINDOW = 5 * MINUTE
T0 = 1_740_960_000_000  # 2025-03-01 00:00 UTC
SCOPE = "purchase:checkout:web"


def binomial_pmf(k: int, n: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def poisson_pmf(k: int, mean: float) -> float:
    return mean**k * math.exp(-mean) / math.factorial(k)


@pytest.mark.parametrize(("k", "n", "p0", "p1"), [(0, 10, 0.3, 0.56), (7, 20, 0.3, 0.6)])
def test_binomial_llr_is_the_log_ratio_of_the_pmfs(k: int, n: int, p0: float, p1: float) -> None:
    reference = math.log(binomial_pmf(k, n, p1) / binomial_pmf(k, n, p0))
    assert binomial_llr(k, n, p0, p1) == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize(("k", "mean", "ratio"), [(0, 12.0, 0.2), (9, 3.5, 2.0), (40, 20.0, 2.0)])
def test_poisson_llr_is_the_log_ratio_of_the_pmfs(k: int, mean: float, ratio: float) -> None:
    reference = math.log(poisson_pmf(k, mean * ratio) / poisson_pmf(k, mean))
    assert poisson_llr(k, mean, ratio) == pytest.approx(reference, rel=1e-9)


def test_odds_shift_multiplies_the_odds() -> None:
    p1 = odds_shift(0.3, 3.0)
    assert p1 / (1 - p1) == pytest.approx(3 * 0.3 / 0.7)


def test_a_run_restarts_below_one_and_is_capped() -> None:
    run = Run()
    run.update(0.5, T0, observed=1, expected=2.0, trials=3, cap=20.0)
    assert run.since_ms is None
    assert (run.value, run.windows) == (0.5, 0)
    for i in range(1, 6):
        run.update(6.0, T0 + i * WINDOW, observed=4, expected=1.0, trials=10, cap=20.0, h=100.0)
    # No suffix alone reaches h: the change is the suffix with the largest sum, all five.
    assert run.value == 20.0 and run.since_ms == T0 + WINDOW and run.windows == 5
    assert (run.observed, run.trials) == (20, 50)
    run.update(6.0, T0 + 6 * WINDOW, observed=4, expected=1.0, trials=10, cap=20.0, h=13.0)
    # The latest windows that alone reach h = 13: the last three (18).
    assert (run.since_ms, run.windows, run.observed) == (T0 + 4 * WINDOW, 3, 12)
    run.update(-30.0, T0 + 7 * WINDOW, observed=0, expected=1.0, trials=10, cap=20.0)
    assert (run.value, run.since_ms, run.observed) == (0.0, None, 0)


def test_the_hazard_is_the_curves_share_of_those_still_in_the_stage() -> None:
    """Cohorts of 100 of whom 50 move on in the entry window and 30 in the next: the
    curve is g0 = 0.5, g1 = 0.8, and the hazard at lag 1 is (0.8 - 0.5) / (1 - 0.5)."""
    params = BaselineParams(BaselineConfig(season_buckets=1, warmup_windows=3))
    progress = Progressions(params, WINDOW, CusumConfig())
    for i in range(40):
        start = T0 + i * WINDOW
        progress.close(SCOPE, start, {ENTERED: 100, LAG_NAMES[0]: 50, LAG_NAMES[1]: 30})
    stage = progress.stages[SCOPE]
    assert progress.expected_share(SCOPE, 1, T0) == pytest.approx(0.8)
    assert progress.hazard(stage, 0, T0) == pytest.approx(0.5)
    assert progress.hazard(stage, 1, T0) == pytest.approx((0.8 - 0.5) / (1 - 0.5))


# -- a checkout at realistic volume ------------------------------------------------------------


def checkout_traffic(
    rng: random.Random,
    *,
    until: int,
    stall: tuple[int, int] | None,
    rate_per_window: float = 17.0,
    share: float = 0.8,
    stalled_share: float = 0.08,
    bimodal: bool = False,
) -> list[tuple[int, str, int | None]]:
    """Stage events (at, what, entered at) of checkout entrants: 80% move on after a
    log-normal time (median 3 minutes; or, `bimodal`, half after ~1 minute and half after
    ~12), the others drop off at the 30-minute time limit. During `stall`, a move on is lost
    (the button does nothing) but for `stalled_share` of normal."""
    events: list[tuple[int, str, int | None]] = []
    at = float(T0)
    while True:
        at += rng.expovariate(rate_per_window / WINDOW)
        if at >= until:
            break
        entered = int(at)
        events.append((entered, ENTERED, None))
        if bimodal:
            median = 1.0 if rng.random() < 0.5 else 12.0
            took = rng.lognormvariate(math.log(median * MINUTE), 0.3)
        else:
            took = rng.lognormvariate(math.log(3 * MINUTE), 0.8)
        moves = rng.random() < share and took < 30 * MINUTE
        moved_at = entered + int(took)
        if moves and stall is not None and stall[0] <= moved_at < stall[1]:
            moves = rng.random() < stalled_share / share
        if moves:
            events.append((moved_at, "progressed", entered))
        else:
            events.append((entered + 30 * MINUTE, DROPPED, None))
    events.sort(key=lambda e: e[0])
    return events


def run_checkout(events: list[tuple[int, str, int | None]]) -> tuple[list[Alert], Detector]:
    windows = TumblingWindows(timedelta(minutes=5), timedelta(minutes=30))
    detector = Detector(DetectorConfig())
    alerts: list[Alert] = []
    next_advance = T0 + MINUTE
    for at, what, entered in events:
        while at >= next_advance:
            alerts += detector.process(windows.advance(next_advance - 2 * MINUTE))
            next_advance += MINUTE
        if what == "progressed":
            count_progress(windows, "purchase", "checkout", "web", at_ms=at, entered_ms=entered)
        else:
            count_stage(windows, "purchase", "checkout", "web", what=what, at_ms=at)
    return alerts, detector


DAY = 24 * 60 * MINUTE


@pytest.mark.parametrize(("seed", "bimodal"), [(1, False), (2, False), (3, True)])
def test_a_silent_checkout_stall_alerts_within_15_minutes(seed: int, bimodal: bool) -> None:
    """Four days of normal checkout traffic, then progression falls to 10% of normal with
    no friction event: a drop-off alert on the stage within 15 minutes of event time from
    the start, and the deadline's drop-offs 30 minutes later join the same incident."""
    rng = random.Random(seed)
    start = T0 + 4 * DAY + 7 * MINUTE + rng.randrange(0, WINDOW)
    stall = (start, start + 60 * MINUTE)
    events = checkout_traffic(rng, until=start + 120 * MINUTE, stall=stall, bimodal=bimodal)
    alerts, _ = run_checkout(events)
    before = [a.explanation for a in alerts if a.window_end.timestamp() * 1000 <= start]
    assert before == []  # four days without a false alarm
    stalled = [a for a in alerts if a.rule == "progression" and a.series.scope == SCOPE]
    assert stalled, "the stall was never detected"
    first = min(stalled, key=lambda a: a.window_end)
    assert first.window_end.timestamp() * 1000 <= start + 15 * MINUTE
    assert first.kind == "dropoff_spike" and first.observed < 0.5 * first.expected
    assert "progression stalled" in first.explanation
    # The deadline's drop-offs (30 minutes after entry) are evidence of the same incident.
    incidents = Incidents(IncidentConfig())
    records = incidents.process(alerts_after(alerts, start), [])
    ids = {r.incident_id for r in records if r.series == Series("dropoff", SCOPE, "dropoff")}
    deadline = [a for a in alerts if a.rule != "progression" and a.series.scope == SCOPE]
    assert deadline and len(ids) == 1


def alerts_after(alerts: list[Alert], start: int) -> list[Alert]:
    """The alerts of the stall's hour and the half hour of deadlines after it (the traffic
    ending later is the simulation stopping, not an incident)."""
    until = start + 100 * MINUTE
    during = [a for a in alerts if start < a.window_end.timestamp() * 1000 <= until]
    return sorted(during, key=lambda a: a.window_end)


def test_a_restored_detector_keeps_its_curve_and_cohorts() -> None:
    rng = random.Random(5)
    events = checkout_traffic(rng, until=T0 + DAY // 2, stall=None)
    _, detector = run_checkout(events)
    rows = dict(detector_state.rows(detector))
    restored = detector_state.restore(detector.config, rows)
    assert dict(detector_state.rows(restored)) == rows
    assert (
        restored.progressions.stages[SCOPE].cohorts == detector.progressions.stages[SCOPE].cohorts
    )


def test_state_written_before_runs_and_curves_restores() -> None:
    """The previous version's rows: a series row of two elements, no progression rows."""
    rng = random.Random(6)
    _, detector = run_checkout(checkout_traffic(rng, until=T0 + DAY // 4, stall=None))
    old = {}
    for key, value in detector_state.rows(detector):
        if key.startswith(detector_state.PROGRESS):
            continue
        old[key] = value[:2] if key.startswith(detector_state.SERIES) else value
    restored = detector_state.restore(detector.config, old)
    assert restored.series_count == detector.series_count
    assert restored.progressions.stages == {}  # learned again from the next windows


# -- a source that goes quiet ------------------------------------------------------------------


def test_a_silent_source_is_one_alert_until_its_traffic_returns() -> None:
    """56 events a window, then none for six hours, then back: one incident, firing through
    the silence (never resolved at zero, never raised again), resolved after it returns."""
    rng = random.Random(9)
    config = DetectorConfig(baseline=BaselineConfig(season_buckets=1))
    detector, incidents = Detector(config), Incidents(IncidentConfig())
    windows = TumblingWindows(timedelta(minutes=5), timedelta(minutes=30))
    key = ("volume", "web:web-shop")
    silent = range(100, 100 + 72)
    statuses: dict[int, str] = {}
    for index in range(100 + 72 + 12):
        at = T0 + index * WINDOW
        if index not in silent:
            windows.add(key, at + 1000, ("events",), amount=max(1, round(rng.gauss(56, 7))))
        advance = windows.advance(at + WINDOW)
        for record in incidents.process(detector.process(advance), advance.closed):
            statuses[index] = record.status
    volume = [r for r in incidents.records() if r.series.kind == "volume"]
    assert len(volume) == 1  # one alert for the whole silence
    firing_from = min(i for i, s in statuses.items() if s == "firing")
    resolved_at = min(i for i, s in statuses.items() if s == "resolved")
    assert firing_from == silent.start
    assert resolved_at >= silent.stop  # never resolved while still at zero
    assert volume[0].status == "resolved"


# -- what a stall alert says ------------------------------------------------------------------


def test_a_stall_names_progression_observed_vs_expected_and_shows_stalled_entrants() -> None:
    """The progression evidence of a drop-off alert (fewer moved on than expected) is named
    in its cause, and entrants that had not moved on come before journeys that dropped."""
    from datetime import UTC, datetime

    from stream_processors.friction.alerts.core.context import (
        DROPOFF_EXAMPLE,
        ENTRY_EXAMPLE,
        AlertContext,
        example_scope,
    )
    from stream_processors.friction.alerts.core.records import AlertRecord, Example

    start = T0 + 24 * WINDOW
    when = datetime.fromtimestamp(start / 1000, UTC)
    record = AlertRecord(
        incident_id="i1",
        version=1,
        status="firing",
        series=Series("dropoff", SCOPE, "dropoff"),
        kind="dropoff_spike",
        started_at=when,
        last_window_start=when,
        last_window_end=datetime.fromtimestamp((start + WINDOW) / 1000, UTC),
        windows=2,
        observed=3,
        expected=41.5,
        volume=120,
        p_value=None,
        severity="critical",
        explanation="progression stalled",
        last_alert_id="a1",
    )
    context = AlertContext()
    dropped = Example("p-dropped", start + 1_000, "web", "/checkout", "dropped off at checkout")
    stalled = Example("p-stalled", start + 9_000, "web", "/checkout", "reached checkout", "j2")
    context.add_examples(start, example_scope(DROPOFF_EXAMPLE, SCOPE), [dropped])
    context.add_examples(start, example_scope(ENTRY_EXAMPLE, SCOPE), [stalled])
    cause = context.cause(record)
    assert "entrants at web checkout stopped moving on: 3 moved on vs 41.5 expected" in cause
    assert [e.person_id for e in context.examples_for(record)] == ["p-stalled", "p-dropped"]
    # Later the deadline's drop-offs are its latest evidence: the stall is still named, also
    # by a context restored from what was written (and from what was written before stalls).
    later = replace(record, version=2, observed=30, expected=8.0)
    context.remember_reference("i1", start)
    assert "stopped moving on: 3 moved on vs 41.5" in context.cause(later)
    restored = AlertContext()
    restored.restore({}, orjson.loads(orjson.dumps(context.snapshot_references())))
    assert "stopped moving on: 3 moved on vs 41.5" in restored.cause(later)
    older = AlertContext()
    older.restore({}, {"i1": [0, {}]})
    assert "stopped moving on" not in older.cause(later)


# -- a moderate rise that lasts -----------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_sustained_moderate_drop_off_rise_alerts_within_its_20_minutes(seed: int) -> None:
    """A stage with a long limit: ~20 journeys leave per window, 30% drop off; for 20
    minutes 72% do. No single window is enough at one in a million; the run of them is."""
    rng = random.Random(seed)
    detector = Detector(DetectorConfig(baseline=BaselineConfig(season_buckets=1)))
    windows = TumblingWindows(timedelta(minutes=5), timedelta(minutes=30))
    rise = range(300, 304)  # four windows: 20 minutes
    found: list[Alert] = []
    for index in range(310):
        at = T0 + index * WINDOW + 1_000
        share = 0.72 if index in rise else 0.3
        leaving = max(1, round(rng.gauss(20, 3)))
        dropped = sum(rng.random() < share for _ in range(leaving))
        for what, n in ((DROPPED, dropped), ("progressed", leaving - dropped)):
            for _ in range(n):
                count_stage(windows, "purchase", "consider", "web", what=what, at_ms=at)
        alerts = detector.process(windows.advance(at - 1_000 + WINDOW))
        found += [
            a for a in alerts if a.series == Series("dropoff", "purchase:consider:web", "dropoff")
        ]
    assert [a for a in found if a.window_end.timestamp() * 1000 <= T0 + rise.start * WINDOW] == []
    during = [a for a in found if a.window_end.timestamp() * 1000 <= T0 + rise.stop * WINDOW]
    assert during, "the rise was not found within its 20 minutes"
    assert all(a.kind == "dropoff_spike" for a in during)


def test_a_source_that_exports_late_is_not_a_source_gone_quiet() -> None:
    """Every window of a store export closes empty and takes its rows late: its on-time
    zeros are not a fall against a baseline that learned the late rows."""
    config = DetectorConfig(baseline=BaselineConfig(season_buckets=1))
    detector = Detector(config)
    windows = TumblingWindows(timedelta(minutes=5), timedelta(minutes=30))
    key = ("volume", "store:pos")
    found: list[Alert] = []
    for index in range(200):
        at = T0 + index * WINDOW
        windows.add(("volume", "web:web-shop"), at + 1_000, ("events",), amount=50)
        if index >= 2:  # the rows of two windows ago land now
            windows.add(key, at - 2 * WINDOW + 1_000, ("events",), amount=8)
        found += detector.process(windows.advance(at + WINDOW))
    assert [a.explanation for a in found if a.series.scope == "store:pos"] == []
