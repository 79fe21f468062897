"""The detector on synthetic window series: spikes and collapses fire, quiet and warming-up
series do not, baselines resist outliers and learn time of day and clumping, backfill
teaches without paging, late versions re-decide an alert under the same id."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from stream_processors.friction.core.baselines import (
    Baseline,
    BaselineConfig,
    BaselineParams,
    poisson_lower,
    poisson_upper,
)
from stream_processors.friction.core.detector import Detector, DetectorConfig
from stream_processors.friction.core.rules import Alert, FixedThreshold, Series
from stream_processors.friction.core.windows import TumblingWindows, WindowKey

SIZE = 5 * 60_000
T0 = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp() * 1000)  # a Monday, 00:00 UTC
CHECKOUT: WindowKey = ("friction", "web:/checkout")
STAGE: WindowKey = ("stage", "purchase:checkout:web")
SOURCE: WindowKey = ("volume", "web:web-shop")
Counts = dict[WindowKey, dict[str, int]]


class Feed:
    """Windows and a detector driven one closed window at a time."""

    def __init__(self, config: DetectorConfig | None = None, lateness_min: int = 30) -> None:
        self.windows = TumblingWindows(timedelta(minutes=5), timedelta(minutes=lateness_min))
        self.detector = Detector(config)
        self.index = 0
        self.alerts: list[Alert] = []

    def step(self, counts: Counts, *, backfill: bool = False) -> list[Alert]:
        """Count one window's events and close it."""
        self.add(self.index, counts, backfill=backfill)
        self.index += 1
        return self.close()

    def add(self, index: int, counts: Counts, *, backfill: bool = False) -> None:
        for key, named in counts.items():
            for name, n in named.items():
                if n:
                    at = T0 + index * SIZE + 1_000
                    self.windows.add(key, at, (name,), amount=n, backfill=backfill)

    def close(self) -> list[Alert]:
        found = self.detector.process(self.windows.advance(T0 + self.index * SIZE))
        self.alerts += found
        return found

    def steps(self, count: int, make: Counts | Callable[[], Counts]) -> list[Alert]:
        out: list[Alert] = []
        for _ in range(count):
            out += self.step(make() if callable(make) else make)
        return out


def per_window(alerts: list[Alert]) -> list[Alert]:
    """The alerts of the one- and two-window tests (the run's tests add their own)."""
    return [a for a in alerts if a.rule in ("baseline", "threshold")]


def friction(exposures: int, errors: int) -> Counts:
    return {CHECKOUT: {"exposures": exposures, "error": errors, "friction": errors}}


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth), enough for the small means here."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def noisy_friction(rng: random.Random, exposures: int = 100, rate: float = 0.03) -> Counts:
    errors = poisson(rng, exposures * rate)
    return friction(exposures, errors)


# -- friction spikes ---------------------------------------------------------------------------


def test_a_friction_spike_fires_with_an_explanation() -> None:
    rng = random.Random(1)
    feed = Feed()
    assert feed.steps(100, lambda: noisy_friction(rng)) == []
    alerts = feed.step(friction(100, 30))
    assert {(a.kind, a.series.name) for a in alerts} == {
        ("friction_spike", "error"),
        ("friction_spike", "friction"),
    }
    alert = next(a for a in alerts if a.series.name == "friction")
    assert alert.series == Series("friction", "web:/checkout", "friction")
    assert (alert.observed, alert.volume, alert.windows) == (30, 100, 1)
    assert 2.0 < alert.expected < 4.5  # about 3% of 100
    assert alert.p_value is not None and alert.p_value < 1e-9
    assert alert.severity == "critical" and alert.rule == "baseline"
    assert alert.window_start == datetime(2025, 3, 3, 8, 20, tzinfo=UTC)
    assert alert.window_end - alert.window_start == timedelta(minutes=5)
    assert "30 in 100 (30.0%)" in alert.explanation
    assert "2025-03-03 08:20-08:25" in alert.explanation


def test_alert_ids_are_deterministic() -> None:
    def run() -> list[str]:
        rng = random.Random(5)
        feed = Feed()
        feed.steps(60, lambda: noisy_friction(rng))
        return [a.alert_id for a in feed.step(friction(100, 40))]

    first = run()
    assert first and first == run()
    assert len(set(first)) == len(first)


def test_no_alert_while_warming_up() -> None:
    feed = Feed(DetectorConfig(baseline=BaselineConfig(warmup_windows=12)))
    feed.steps(11, friction(100, 3))
    assert feed.step(friction(100, 60)) == []  # the 12th window: still warming up
    feed.steps(12, friction(100, 3))
    assert feed.step(friction(100, 60)) != []


@pytest.mark.parametrize(
    ("exposures", "errors"),
    [(15, 10), (100, 4)],  # too little volume; too few signals
)
def test_quiet_series_never_page(exposures: int, errors: int) -> None:
    feed = Feed()
    feed.steps(60, friction(exposures, 0))
    assert feed.step(friction(exposures, errors)) == []


def test_a_small_rise_on_a_busy_touchpoint_is_not_a_spike() -> None:
    # 4% against 3% on 5,000 exposures is significant, but not the doubling that pages.
    rng = random.Random(2)
    feed = Feed()
    feed.steps(60, lambda: noisy_friction(rng, 5000))
    assert feed.step(friction(5000, 200)) == []


def test_an_incident_does_not_become_the_baseline() -> None:
    rng = random.Random(3)
    config = DetectorConfig(pair_test=False)
    feed = Feed(config)
    feed.steps(100, lambda: noisy_friction(rng))
    spikes = [feed.step(friction(100, 25)) for _ in range(12)]  # an hour of incident
    assert all(spikes)
    last = next(a for a in spikes[-1] if a.series.name == "friction")
    assert last.expected < 6.0  # the baseline stayed near 3%, clipped at its bound


def test_a_lasting_new_level_is_learned_after_relearn_after() -> None:
    config = DetectorConfig(baseline=BaselineConfig(relearn_after=6))
    feed = Feed(config)
    feed.steps(100, friction(100, 3))
    firing = [bool(feed.step(friction(100, 20))) for _ in range(150)]
    assert firing[0] and not any(firing[-20:])


def test_the_pair_test_finds_a_moderate_lasting_rise() -> None:
    def run(pair: bool) -> list[Alert]:
        feed = Feed(DetectorConfig(pair_test=pair))
        feed.steps(100, friction(100, 3))
        return feed.step(friction(100, 12)) + feed.step(friction(100, 12))

    assert run(pair=False) == []  # 12 against 3 expected: p ~ 1e-4, twice
    (alert, *_) = [a for a in run(pair=True) if a.series.name == "friction"]
    assert alert.windows == 2 and (alert.observed, alert.volume) == (24, 200)
    assert alert.window_end - alert.window_start == timedelta(minutes=10)


def test_a_signal_new_to_a_touchpoint_fires_without_its_own_warm_up() -> None:
    feed = Feed()
    feed.steps(60, friction(100, 3))
    alerts = feed.step(
        {CHECKOUT: {"exposures": 100, "error": 3, "payment_declined": 25, "friction": 28}}
    )
    declined = [a for a in alerts if a.series.name == "payment_declined"]
    assert declined and declined[0].expected == pytest.approx(0.1)  # the min_rate floor


def test_positive_moments_are_not_tested() -> None:
    feed = Feed()
    feed.steps(60, {CHECKOUT: {"exposures": 100, "order_completed": 10}})
    assert feed.step({CHECKOUT: {"exposures": 100, "order_completed": 90}}) == []


def test_clumped_signals_are_learned_as_dispersion() -> None:
    rng = random.Random(4)

    def clumped() -> Counts:
        errors = 2 * poisson(rng, 3.0)  # every error arrives twice
        return friction(200, errors)

    plain = Feed()
    plain.steps(400, lambda: noisy_friction(rng, 200))
    clumpy = Feed()
    clumpy.steps(400, clumped)
    scope = Series("friction", "web:/checkout", "friction")
    params = BaselineParams(BaselineConfig())
    assert plain.detector._baselines[scope].dispersion(params) < 1.4
    assert 1.6 < clumpy.detector._baselines[scope].dispersion(params) < 2.6
    # 22 errors (four clumped draws above the mean) is news only without clumping.
    assert plain.step(friction(200, 22)) != []
    assert clumpy.step(friction(200, 22)) == []


# -- drop-offs and collapses -------------------------------------------------------------------


def stage(entered: int, progressed: int, dropped: int) -> Counts:
    return {STAGE: {"entered": entered, "progressed": progressed, "dropped": dropped}}


def test_the_first_drop_offs_of_a_new_pipeline_are_not_a_spike() -> None:
    feed = Feed()
    feed.steps(50, stage(40, 40, 0))  # drop-offs come one time limit after entry
    assert feed.steps(30, stage(40, 32, 8)) == []


def test_a_drop_off_spike() -> None:
    feed = Feed()
    feed.steps(60, stage(40, 36, 4))
    found = feed.step(stage(40, 15, 25))
    (alert,) = [a for a in per_window(found) if a.kind == "dropoff_spike"]
    assert alert.series == Series("dropoff", "purchase:checkout:web", "dropoff")
    assert (alert.observed, alert.volume) == (25, 40)


def test_entries_collapsing_to_near_zero_fire_even_in_empty_windows() -> None:
    feed = Feed(DetectorConfig(pair_test=False))
    feed.steps(60, stage(40, 36, 4))
    collapsed = per_window(feed.step(stage(2, 0, 0)))
    assert [a.kind for a in collapsed] == ["entries_collapse"]
    assert collapsed[0].observed == 2 and collapsed[0].expected == pytest.approx(40, rel=0.05)
    silent = per_window(feed.step({}))  # no window at all: nothing arrived for the stage
    assert [(a.kind, a.observed, a.window_version) for a in silent] == [("entries_collapse", 0, 0)]


def test_a_silent_source_is_noticed_and_a_quiet_one_is_not() -> None:
    feed = Feed()
    feed.steps(60, {SOURCE: {"events": 300}, ("volume", "app:tiny"): {"events": 3}})
    alerts = feed.step({})
    assert {(a.kind, a.series.scope) for a in alerts} == {("volume_collapse", "web:web-shop")}


def test_a_dip_above_the_collapse_ratio_is_not_a_collapse() -> None:
    feed = Feed()
    feed.steps(60, {SOURCE: {"events": 300}})
    assert feed.step({SOURCE: {"events": 90}}) == []  # 30% of usual: low, not collapsed


def test_time_of_day_is_learned_once_there_is_history() -> None:
    """Busy days and quiet nights: without seasonality the evening drop looks like a
    collapse every day; with it, only the first days' evenings do."""

    def run(buckets: int) -> list[int]:
        rng = random.Random(6)
        config = DetectorConfig(baseline=BaselineConfig(season_buckets=buckets))
        feed = Feed(config)
        days_with_alerts = []
        for _day in range(6):
            found = []
            for i in range(288):
                busy = 8 * 12 <= i < 20 * 12
                found += feed.step({SOURCE: {"events": poisson(rng, 120.0 if busy else 6.0)}})
            days_with_alerts.append(len(found))
        return days_with_alerts

    assert all(run(buckets=1)[3:])
    seasonal = run(buckets=24)
    assert seasonal[0] and not any(seasonal[4:])


# -- thresholds, backfill, late versions, memory -----------------------------------------------


def test_fixed_thresholds_need_no_baseline() -> None:
    config = DetectorConfig(
        thresholds=(
            FixedThreshold(
                "friction", "web:/check*", "friction", max_rate=0.2, severity="critical"
            ),
            FixedThreshold("volume", "web:*", min_count=50),
        )
    )
    feed = Feed(config)
    first = feed.step({**friction(100, 25), SOURCE: {"events": 10}})
    assert sorted((a.kind, a.rule, a.severity) for a in first) == [
        ("friction_spike", "threshold", "critical"),
        ("volume_collapse", "threshold", "warning"),
    ]
    assert all(math.isnan(a.expected) and a.p_value is None for a in first)
    assert "fixed threshold" in first[0].explanation


def test_backfill_teaches_the_baseline_but_never_pages() -> None:
    feed = Feed()
    for _ in range(60):
        feed.step(friction(100, 3), backfill=True)
    assert feed.step(friction(100, 40), backfill=True) == []
    assert feed.step({}) == []  # an empty window while backfilling is backfill too
    # Live data now: the baseline from the backfill is warm and the spike pages at once.
    assert feed.step(friction(100, 40)) != []


def test_late_events_re_decide_an_alert_under_the_same_id() -> None:
    feed = Feed(DetectorConfig(pair_test=False))
    feed.steps(60, friction(100, 3))
    assert feed.step(friction(100, 4)) == []
    feed.add(feed.index - 1, friction(0, 26))  # late errors for the window just closed
    (late,) = [a for a in feed.close() if a.series.name == "friction"]
    assert late.window_version == 2 and late.observed == 30 and not late.retracted
    # More late exposures make it ordinary again: the alert is withdrawn, same id.
    feed.add(feed.index - 1, {CHECKOUT: {"exposures": 900}})
    withdrawn = [a for a in feed.close() if a.series.name == "friction"]
    assert [(a.alert_id, a.retracted, a.window_version) for a in withdrawn] == [
        (late.alert_id, True, 3)
    ]


def test_series_without_data_are_forgotten() -> None:
    feed = Feed(DetectorConfig(forget_after=timedelta(hours=1)))
    feed.steps(10, {SOURCE: {"events": 100}, CHECKOUT: {"exposures": 10}})
    assert feed.detector.series_count == 2
    feed.steps(13, {SOURCE: {"events": 100}})
    assert feed.detector.series_count == 1


# -- the statistics ----------------------------------------------------------------------------


def exact_pmf(i: int, mean: Fraction) -> Fraction:
    return mean**i / math.factorial(i)


@pytest.mark.parametrize(("k", "mean"), [(3, "0.5"), (12, "1.5"), (40, "25"), (1, "0.01")])
def test_poisson_upper_tail_is_exact(k: int, mean: str) -> None:
    m = Fraction(mean)
    below = sum(exact_pmf(i, m) for i in range(k))
    expected = 1 - float(below) * math.exp(-float(m))
    assert poisson_upper(k, float(m)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("c", "mean"), [(0, "20"), (3, "30"), (10, "60"), (0, "900")])
def test_poisson_lower_tail_is_exact(c: int, mean: str) -> None:
    m = Fraction(mean)
    expected = float(sum(exact_pmf(i, m) for i in range(c + 1))) * math.exp(-float(m))
    assert poisson_lower(c, float(m)) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_tails_on_the_wrong_side_of_the_mean_are_one() -> None:
    assert poisson_upper(2, 3.0) == 1.0 and poisson_upper(0, 0.0) == 1.0
    assert poisson_lower(5, 4.0) == 1.0 and poisson_upper(3, 0.0) == 0.0


def test_a_late_correction_moves_the_baseline() -> None:
    params = BaselineParams(replace(BaselineConfig(), season_buckets=1))
    baseline = Baseline(params)
    for i in range(20):
        baseline.learn(params, T0 + i * SIZE, 3, 100, two_sided=False)
    before = baseline.rate(params, T0)
    baseline.revise(params, T0, 10, 0)
    after = baseline.rate(params, T0)
    assert before is not None and after is not None and after > before


def test_windows_and_detector_must_agree_on_the_window() -> None:
    windows = TumblingWindows(timedelta(minutes=1), timedelta(minutes=5))
    windows.add(SOURCE, T0, ("events",))
    with pytest.raises(ValueError, match="give both the same window"):
        Detector().process(windows.advance(T0 + 3 * 60_000))
