"""Friction spikes and sudden drop-off, decided per closed window (docs/concepts.md §6).

The detector reads what `TumblingWindows.advance()` emits and answers with alerts:

- **friction spike** (`friction` windows): signals per exposure at a scope, per signal and
  for all friction together; **drop-off spike** (`stage` windows): drop-offs per journey
  leaving the stage (`dropped / (dropped + progressed)`). Count tests: the count against a
  Poisson of the baseline rate times this window's volume, scaled by the learned
  dispersion, and the count must also be `spike_ratio` times the expectation.
- **collapse** (`entered` of `stage` windows, `events` of `volume` windows): the count falls
  to `collapse_ratio` of its expectation or less, with a Poisson lower tail below `alpha`.
  A broken checkout shows as entries falling to near zero, and a silent source as no events;
  empty windows are evaluated too, which is why every known series is visited per window.
- Each test is run on the window alone and on it together with the window before, which
  doubles the evidence for a change that lasts: that is what finds a moderate spike on a
  quiet touchpoint by the second window of an incident.
- **fixed thresholds**, optional per series (`FixedThreshold`), need no baseline.

Quiet series never page: no test before `warmup_windows`, fewer than `min_exposures` or
`min_signals`, or an expectation under `min_expected`. Backfilled windows are learned but
raise nothing. A window re-emitted with late events is tested again: the alert keeps its id
(so a sink replaces it), and an alert that no longer holds is sent again as retracted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas.friction import POSITIVE_SIGNALS
from stream_processors.friction.core.baselines import (
    Baseline,
    BaselineConfig,
    BaselineParams,
    poisson_lower,
    poisson_upper,
)
from stream_processors.friction.core.progression import InFlight, Progressions
from stream_processors.friction.core.rules import (
    RULES,
    Alert,
    AlertKind,
    FixedThreshold,
    Rule,
    Series,
    Severity,
    alert_id,
    explain,
    retracted,
)
from stream_processors.friction.core.sequential import (
    CusumConfig,
    Run,
    binomial_llr,
    odds_shift,
    poisson_llr,
)
from stream_processors.friction.core.series import (
    ANY_FRICTION,
    DROPPED,
    ENTERED,
    EVENTS,
    EXPOSURES,
    FRICTION,
    PROGRESSED,
    STAGE,
    VOLUME,
)
from stream_processors.friction.core.windows import Advance, WindowCounts, WindowKey

_SPIKE_KINDS: dict[str, AlertKind] = {"friction": "friction_spike", "dropoff": "dropoff_spike"}
_COLLAPSE_KINDS: dict[str, AlertKind] = {"entries": "entries_collapse", "volume": "volume_collapse"}
_SERIES_KINDS = {FRICTION: (FRICTION,), STAGE: ("dropoff", "entries"), VOLUME: ("volume",)}


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    alpha: float = 1e-6  # the p-value an alert needs
    critical_alpha: float = 1e-9  # ... and a critical one
    spike_ratio: float = 2.0  # a spike is also at least this many times the expectation
    collapse_ratio: float = 0.2  # a collapse is at most this share of the expectation
    min_signals: int = 5
    min_exposures: int = 20
    min_rate: float = 0.001  # the floor of a learned rate: "never happened" is not "never will"
    min_expected: float = 10.0  # a collapse needs at least this many expected per window
    pair_test: bool = True  # also test each window together with the one before
    thresholds: tuple[FixedThreshold, ...] = ()
    # The tests over the run of recent windows (None: per-window tests only), and whether
    # stage series are tested on their entrants in flight.
    cusum: CusumConfig | None = field(default_factory=CusumConfig)
    progression: bool = True
    min_run_expected: float = 5.0  # a run's expectation before a CUSUM alert may page
    forget_after: timedelta = timedelta(days=7)  # series without data this long are dropped
    revisable_for: timedelta = timedelta(days=1)  # at least the windows' allowed lateness
    # Window keys only late channels feed (`series.late_channel_keys`; None: no such
    # channels), and how long after its window closes such a key's counts (entries, volume)
    # are judged: their exports land after the close, so a count judged on close would be
    # whatever had landed by then, which depends on how far the stage trails the stream.
    late_keys: Callable[[WindowKey], bool] | None = None
    late_count_wait: timedelta = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class _Test:
    series: Series
    hits: int
    trials: int  # for counts: 1 per window
    rate_series: bool
    windows: int = 1


@dataclass(slots=True)
class _Held:
    """A late channel's window whose counts wait `late_count_wait` to be judged."""

    counts: Mapping[str, int]
    version: int
    backfill: bool


_COUNT_KINDS = ("entries", "volume")  # series with a count (collapse) test


@dataclass(frozen=True, slots=True)
class _Seen:
    """A series' last on-time window, for the pair test."""

    start: int
    hits: int
    trials: int
    expected: float | None


class Detector:
    """Baselines per series and the tests above; feed it every `Advance` in order."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._params = BaselineParams(self.config.baseline)
        self._size = self.config.baseline.window_ms
        self._baselines: dict[Series, Baseline] = {}
        self._last: dict[Series, _Seen] = {}
        self._names: dict[WindowKey, set[str]] = {}  # signal counters seen per friction key
        self._last_data: dict[WindowKey, int] = {}
        self._alerted: dict[tuple[Series, int, Rule], Alert] = {}
        self._thresholds: dict[Series, tuple[FixedThreshold, ...]] = {}
        self._backfilling = False
        self._cusum = self.config.cusum or CusumConfig()
        self._forget_ms = int(self.config.forget_after.total_seconds() * 1000)
        self._runs: dict[Series, Run] = {}
        # Count series whose windows took late counts after they were judged: when each last
        # did. Their on-time counts fall short of a baseline that learned the late ones too,
        # so the run of windows is not tested for a fall there. Late channels' counts are
        # held (`_held`) and judged once their exports are due, so only an export later
        # than that marks them.
        self._late: dict[Series, int] = {}
        self._wait_ms = int(self.config.late_count_wait.total_seconds() * 1000)
        self._held: dict[tuple[WindowKey, int], _Held] = {}
        self._closed_ms: int | None = None  # the last start closed
        self._held_from: int | None = None  # the first start whose late counts were held
        self.progressions = Progressions(self._params, self._size, self._cusum)

    def process(self, advance: Advance) -> list[Alert]:
        """Alerts for the windows one watermark advance closed or re-emitted."""
        if len(advance.closed) and advance.closed.step != self._size:
            raise ValueError(
                f"windows of {advance.closed.step} ms, but the detector's baseline config "
                f"says {self._size} ms: give both the same window"
            )
        on_time: dict[int, dict[WindowKey, WindowCounts]] = {}
        alerts: list[Alert] = []
        for window in advance.windows:
            if window.previous is None:
                on_time.setdefault(window.start_ms, {})[window.key] = window
            else:
                alerts += self._revise(window)
        # `TumblingWindows` emits on-time first versions only for the starts in `closed`.
        for start in advance.closed:
            alerts += self._close(start, on_time.get(start, {}))
        return alerts

    @property
    def series_count(self) -> int:
        return len(self._baselines)

    # -- one closed window start ------------------------------------------------------------

    def _close(self, start: int, present: Mapping[WindowKey, WindowCounts]) -> list[Alert]:
        if present:
            # A window with no data of its own is backfill when the stream is backfilling.
            self._backfilling = all(w.backfill for w in present.values())
        for key in present:
            self._last_data[key] = start
        if self._held_from is None:
            self._held_from = start
        self._closed_ms = start
        # Held windows due, and those of keys no longer late (settings changed across a
        # restart), before this start's: every series sees its windows in start order.
        alerts = self._release(start)
        for key in list(self._last_data):
            window = present.get(key)
            counts = window.counts if window is not None else {}
            backfill = window.backfill if window is not None else self._backfilling
            version = window.version if window is not None else 0
            held = self._counts_wait(key)
            if held:
                self._held[(key, start)] = _Held(counts, version, backfill)
            for test in self._tests(key, counts):
                if not (held and test.series.kind in _COUNT_KINDS):
                    alerts += self._run(test, start, version, backfill)
            if key[0] == STAGE and self.config.progression:
                alerts += self._in_flight(key[1], start, counts, version, backfill)
        self._forget(start)
        return alerts

    def _release(self, start: int) -> list[Alert]:
        """Judge the late channels' counts held `late_count_wait` (closing `start`), in start
        order, on what they hold by now."""
        due = sorted(
            (at, key)
            for key, at in self._held
            if at <= start - self._wait_ms or not self._counts_wait(key)
        )
        alerts: list[Alert] = []
        for at, key in due:
            held = self._held.pop((key, at))
            for test in self._tests(key, held.counts):
                if test.series.kind in _COUNT_KINDS:
                    alerts += self._run(test, at, held.version, held.backfill)
        return alerts

    def _holds(self, key: WindowKey, start: int, *, known: bool) -> bool:
        """Whether a late window's counts of `key` at `start` are still held, not judged.
        A key already `known` holds exactly what its closes held; one first seen in a late
        version is held from that window on while it is not due, as if it had come on time
        (the windows closed since it, empty, are held too: `_hold_since`)."""
        if (key, start) in self._held:
            return True  # held when it closed, whatever the settings restored say now
        if known or not self._counts_wait(key):
            return False
        # Not before counts were first held: a window closed before an upgrade was judged.
        return (
            self._closed_ms is not None
            and self._held_from is not None
            and self._held_from <= start
            and start > self._closed_ms - self._wait_ms
        )

    def _hold_since(self, key: WindowKey, start: int, backfill: bool) -> None:
        """A key first seen in a late version of `start`: the windows closed after it held
        empty, as its closes would have held them had its rows come on time."""
        assert self._closed_ms is not None  # `_holds` said so
        for later in range(start + self._size, self._closed_ms + self._size, self._size):
            self._held.setdefault((key, later), _Held({}, 0, backfill))

    def _counts_wait(self, key: WindowKey) -> bool:
        return counts_wait(self.config, key)

    @property
    def held_windows(self) -> int:
        """Late channels' windows waiting for their counts to be judged."""
        return len(self._held)

    def _in_flight(
        self, scope: str, start: int, counts: Mapping[str, int], version: int, backfill: bool
    ) -> list[Alert]:
        """The stage's entrants in flight against its progression-by-age curve; an alert is
        about the stage's drop-off series, so that the drop-offs its deadline brings later
        join the same incident."""
        found = self.progressions.close(scope, start, counts)
        if backfill or not found.at_peak or not self._stalled(found):
            return []
        cfg = self._cusum
        severity: Severity = "critical" if found.value >= cfg.critical_h else "warning"
        series = Series("dropoff", scope, "dropoff")  # the drop-off share's series
        first = found.since_ms if found.since_ms is not None else start
        begin = datetime.fromtimestamp(first / 1000, UTC)
        end = datetime.fromtimestamp((start + self._size) / 1000, UTC)
        alert = Alert(
            alert_id=alert_id("progression", series, start),
            kind="dropoff_spike",
            rule="progression",
            series=series,
            window_start=begin,
            window_end=end,
            window_version=version,
            windows=found.windows,
            observed=found.observed,
            volume=found.entrants,
            expected=found.expected,
            p_value=None,
            severity=severity,
            explanation=_in_flight_text(series, found, begin, end, cfg.progression_h),
        )
        self._alerted[(series, start, "progression")] = alert
        return [alert]

    def _stalled(self, found: InFlight) -> bool:
        cfg = self._cusum
        return (
            found.tested
            and found.value >= cfg.progression_h
            and found.expected >= self.config.min_run_expected
            and found.observed <= (1.0 + cfg.fall) / 2.0 * found.expected
        )

    def _tests(self, key: WindowKey, counts: Mapping[str, int]) -> Iterable[_Test]:
        kind, scope = key
        if kind == FRICTION:
            yield from self._friction_tests(key, counts)
        elif kind == STAGE:
            dropped = counts.get(DROPPED, 0)
            leaving = dropped + counts.get(PROGRESSED, 0)
            yield _Test(Series("dropoff", scope, "dropoff"), dropped, leaving, True)
            yield _Test(Series("entries", scope, ENTERED), counts.get(ENTERED, 0), 1, False)
        elif kind == VOLUME:
            yield _Test(Series("volume", scope, EVENTS), counts.get(EVENTS, 0), 1, False)

    def _friction_tests(self, key: WindowKey, counts: Mapping[str, int]) -> Iterable[_Test]:
        scope = key[1]
        exposures = counts.get(EXPOSURES, 0)
        names = self._names.setdefault(key, set())
        names.update(n for n in counts if n != EXPOSURES and n not in POSITIVE_SIGNALS)
        for name in sorted(names):
            yield _Test(Series(FRICTION, scope, name), counts.get(name, 0), exposures, True)
        # The exposures are learned (not tested), last, so that a signal first seen at a scope
        # starts from "zero in every exposure so far" (`Baseline.start_silent`), not nothing.
        yield _Test(Series(FRICTION, scope, EXPOSURES), exposures, 1, False)

    def _run(self, test: _Test, start: int, version: int, backfill: bool) -> list[Alert]:
        series = test.series
        baseline = self._baseline(series)
        expected = self._expected(test, baseline, start)
        alerts = [] if backfill else self._judge(test, baseline, start, version, expected)
        if expected is not None and not backfill and self.config.cusum is not None:
            alerts += self._accumulate(test, baseline, start, version, expected)
        self._last[series] = _Seen(start, test.hits, test.trials, expected)
        if test.rate_series and test.trials == 0 and test.hits == 0:
            return alerts  # nothing was exposed: nothing to learn
        run = self._runs.get(series)
        if run is not None and run.alarmed and series.kind in ("entries", "volume"):
            # A count that collapsed and still is: learning its silence would make the
            # silence normal, and the alert resolve while the source is still down. The
            # baseline resumes when the collapse ends (`_collapse_stands`).
            return alerts
        if series.kind == "dropoff" and baseline.windows == 0 and test.hits == 0:
            # Drop-offs are reported a stage's time limit after entry: until the first one,
            # a rate of zero is the pipeline starting, not a baseline.
            return alerts
        baseline.learn(self._params, start, test.hits, test.trials, two_sided=not test.rate_series)
        return alerts

    def _judge(
        self,
        test: _Test,
        baseline: Baseline,
        start: int,
        version: int,
        expected: float | None,
        *,
        pair: bool = True,
    ) -> list[Alert]:
        alerts = []
        for found in (
            self._baseline_alert(
                test, baseline, start, version=version, expected=expected, pair=pair
            ),
            self._threshold_alert(test, start, version, expected),
        ):
            if found is not None:
                self._alerted[(test.series, start, found.rule)] = found
                alerts.append(found)
        return alerts

    # -- evidence over the run of recent windows ---------------------------------------------

    def _accumulate(
        self, test: _Test, baseline: Baseline, start: int, version: int, expected: float
    ) -> list[Alert]:
        """One window into the series' CUSUM (`sequential.py`): a rise of a signal rate
        (Poisson, designed doubling), of a drop-off share (binomial, designed odds ratio)
        or a fall of a count (Poisson); an alert while it stays at or above h."""
        series, cfg = test.series, self._cusum
        phi = self._dispersion(series, baseline)
        if series.kind == "dropoff":
            if test.trials <= 0:
                return []
            p0 = min(0.99, max(expected / test.trials, self.config.min_rate))
            llr = binomial_llr(test.hits, test.trials, p0, odds_shift(p0, cfg.odds))
        elif series.kind == FRICTION and test.rate_series:
            llr = poisson_llr(test.hits / phi, expected / phi, cfg.rise)
        elif series.kind in ("entries", "volume"):
            # Counts follow the day: judged only against their own time of day's level, and
            # not where late exports fill the windows after they close.
            late = self._late.get(series)
            if not baseline.seasonal_ready(self._params, start) or (
                late is not None and start - late < self._forget_ms
            ):
                return []
            llr = poisson_llr(test.hits / phi, expected / phi, self.config.collapse_ratio)
        else:
            return []
        run = self._runs.get(series)
        if run is None:
            run = self._runs[series] = Run()
        trials = test.trials if test.rate_series else 1
        run.update(
            llr, start, observed=test.hits, expected=expected, trials=trials, cap=cfg.cap, h=cfg.h
        )
        if series.kind in ("entries", "volume") and run.alarmed:
            return self._collapse_goes_on(series, run, start, version)
        # Only at the run's highest: a change that ended is not paged on for the windows
        # its CUSUM takes to come back down.
        if not run.at_peak or run.value < cfg.h or not self._run_holds(series, run):
            return []
        run.alarmed = True
        return [self._run_alert(series, run, start, version)]

    def _collapse_goes_on(self, series: Series, run: Run, start: int, version: int) -> list[Alert]:
        """A collapse is a level, not an event: it stays alerting while the series stays
        down, however its CUSUM moves. At low volume a stray event or a learned dip took it
        off its peak for a few windows, which resolved the incident and fired it again at
        the next peak: one silent source paged over and over."""
        if self._collapse_stands(run):
            return [self._run_alert(series, run, start, version)]
        run.alarmed = False
        return []

    def _collapse_stands(self, run: Run) -> bool:
        """A collapse that alarmed still holds: its latest windows, back to
        `min_run_expected` expected, have at most halfway to normal (traffic that returns
        ends it within those windows)."""
        observed, expected = run.recent(self.config.min_run_expected)
        return expected > 0.0 and observed <= (1.0 + self.config.collapse_ratio) / 2.0 * expected

    def _run_holds(self, series: Series, run: Run) -> bool:
        """The run's own figures show the change, not only its likelihood: at least
        `min_run_expected` expected (`min_signals` signals for friction), and halfway to
        the designed change."""
        cfg = self._cusum
        if series.kind == "dropoff":
            if run.trials <= 0:
                return False
            p0 = min(0.99, max(run.expected / run.trials, self.config.min_rate))
            share = run.observed / run.trials
            return (
                run.observed >= self.config.min_signals
                and share >= (p0 + odds_shift(p0, cfg.odds)) / 2.0
            )
        if series.kind == FRICTION:
            return (
                run.observed >= self.config.min_signals
                and run.observed >= (1.0 + cfg.rise) / 2.0 * run.expected
            )
        return (
            run.expected >= self.config.min_run_expected
            and run.observed <= self.config.collapse_ratio * run.expected
        )

    def _run_alert(self, series: Series, run: Run, start: int, version: int) -> Alert:
        kind = (_SPIKE_KINDS | _COLLAPSE_KINDS)[series.kind]
        first = run.since_ms if run.since_ms is not None else start
        begin = datetime.fromtimestamp(first / 1000, UTC)
        end = datetime.fromtimestamp((start + self._size) / 1000, UTC)
        rate_series = series.kind in _SPIKE_KINDS
        severity: Severity = "critical" if run.value >= self._cusum.critical_h else "warning"
        text = explain(
            series,
            hits=run.observed,
            trials=run.trials,
            rate_series=rate_series,
            expected=run.expected,
            p=None,
            begin=begin,
            end=end,
            version=version,
        )
        alert = Alert(
            alert_id=alert_id("cusum", series, start),
            kind=kind,
            rule="cusum",
            series=series,
            window_start=begin,
            window_end=end,
            window_version=version,
            windows=run.windows,
            observed=run.observed,
            volume=run.trials if rate_series else run.observed,
            expected=run.expected,
            p_value=None,
            severity=severity,
            explanation=f"{text}, over {run.windows} windows (CUSUM {run.value:.1f} >= "
            f"{self._cusum.h:.1f})",
        )
        self._alerted[(series, start, "cusum")] = alert
        return alert

    # -- the tests --------------------------------------------------------------------------

    def _expected(self, test: _Test, baseline: Baseline, start: int) -> float | None:
        rate = baseline.rate(self._params, start)
        if rate is None or not baseline.warm(self._params):
            return None
        if test.rate_series:
            return max(rate, self.config.min_rate) * test.trials
        return rate

    def _baseline_alert(
        self,
        test: _Test,
        baseline: Baseline,
        start: int,
        *,
        version: int,
        expected: float | None,
        pair: bool,
    ) -> Alert | None:
        # A scope's exposures are learned, not tested (friction is about its signals).
        kinds = _SPIKE_KINDS if test.rate_series else _COLLAPSE_KINDS
        kind = kinds.get(test.series.kind)
        if expected is None or kind is None:
            return None
        phi = self._dispersion(test.series, baseline)
        best: tuple[float, _Test, float] | None = None
        for candidate, wanted in self._candidates(test, start, expected, pair):
            p = self._p_value(candidate, wanted, phi)
            if p is not None and p <= self.config.alpha and (best is None or p < best[0]):
                best = (p, candidate, wanted)
        if best is None:
            return None
        p, decided, wanted = best
        severity: Severity = "critical" if p <= self.config.critical_alpha else "warning"
        return self._alert(
            decided,
            start,
            version=version,
            kind=kind,
            rule="baseline",
            expected=wanted,
            p=p,
            severity=severity,
        )

    def _candidates(
        self, test: _Test, start: int, expected: float, pair: bool
    ) -> list[tuple[_Test, float]]:
        """The window alone, and with the window before when that one was tested too."""
        out = [(test, expected)]
        before = self._last.get(test.series)
        if (
            pair
            and self.config.pair_test
            and before is not None
            and before.start == start - self._size
            and before.expected is not None
        ):
            hits, trials = test.hits + before.hits, test.trials + before.trials
            both = _Test(test.series, hits, trials, test.rate_series, windows=2)
            out.append((both, expected + before.expected))
        return out

    def _p_value(self, test: _Test, expected: float, phi: float) -> float | None:
        cfg, n = self.config, test.windows
        if test.rate_series:
            # Volume and size gates first: a quiet series never pages, whatever its p-value.
            if test.trials < cfg.min_exposures * n or test.hits < cfg.min_signals:
                return None
            if test.hits < cfg.spike_ratio * expected:
                return None
            # Quasi-Poisson: scaling by the dispersion keeps clumped signals from paging.
            return poisson_upper(math.floor(test.hits / phi + 1e-9), expected / phi)
        if expected < cfg.min_expected * n or test.hits > cfg.collapse_ratio * expected:
            return None
        return poisson_lower(math.ceil(test.hits / phi - 1e-9), expected / phi)

    def _dispersion(self, series: Series, baseline: Baseline) -> float:
        """The series' own dispersion, or its scope's (all friction together) when larger:
        clumping (an event sent twice, an error retried) is a property of the touchpoint,
        and a rare signal alone has too few hits to learn it."""
        phi = baseline.dispersion(self._params)
        if series.kind == FRICTION and series.name != ANY_FRICTION:
            scope = self._baselines.get(Series(FRICTION, series.scope, ANY_FRICTION))
            if scope is not None:
                phi = max(phi, scope.dispersion(self._params))
        return phi

    def _threshold_alert(
        self, test: _Test, start: int, version: int, expected: float | None
    ) -> Alert | None:
        kinds = _SPIKE_KINDS if test.rate_series else _COLLAPSE_KINDS
        kind = kinds.get(test.series.kind)
        if kind is None:
            return None
        for threshold in self._thresholds_for(test.series):
            if self._crosses(threshold, test):
                known = expected if expected is not None else math.nan
                return self._alert(
                    test,
                    start,
                    version=version,
                    kind=kind,
                    rule="threshold",
                    expected=known,
                    p=None,
                    severity=threshold.severity,
                )
        return None

    def _crosses(self, threshold: FixedThreshold, test: _Test) -> bool:
        if test.rate_series:
            return (
                threshold.max_rate is not None
                and test.trials >= self.config.min_exposures
                and test.hits > threshold.max_rate * test.trials
            )
        return threshold.min_count is not None and test.hits < threshold.min_count

    def _thresholds_for(self, series: Series) -> tuple[FixedThreshold, ...]:
        found = self._thresholds.get(series)
        if found is None:
            found = tuple(t for t in self.config.thresholds if t.matches(series))
            self._thresholds[series] = found
        return found

    def _alert(
        self,
        test: _Test,
        start: int,
        *,
        version: int,
        kind: AlertKind,
        rule: Rule,
        expected: float,
        p: float | None,
        severity: Severity,
    ) -> Alert:
        first = start - (test.windows - 1) * self._size
        begin = datetime.fromtimestamp(first / 1000, UTC)
        end = datetime.fromtimestamp((start + self._size) / 1000, UTC)
        return Alert(
            alert_id=alert_id(rule, test.series, start),
            kind=kind,
            rule=rule,
            series=test.series,
            window_start=begin,
            window_end=end,
            window_version=version,
            windows=test.windows,
            observed=test.hits,
            volume=test.trials if test.rate_series else test.hits,
            expected=expected,
            p_value=p,
            severity=severity,
            explanation=explain(
                test.series,
                hits=test.hits,
                trials=test.trials,
                rate_series=test.rate_series,
                expected=expected,
                p=p,
                begin=begin,
                end=end,
                version=version,
            ),
        )

    # -- late versions ----------------------------------------------------------------------

    def _revise(self, window: WindowCounts) -> list[Alert]:
        """A closed window changed: test it again (alone), then correct what was learned."""
        start, previous = window.start_ms, window.previous or {}
        known = window.key in self._last_data
        self._last_data[window.key] = max(self._last_data.get(window.key, start), start)
        old = {t.series: t for t in self._tests(window.key, previous)}
        if window.key[0] == STAGE:
            self.progressions.revise(window.key[1], start, window.counts, previous)
        alerts: list[Alert] = []
        sums = self.config.cusum is not None
        held = self._holds(window.key, start, known=known)
        if held:
            if not known:
                self._hold_since(window.key, start, window.backfill)
            self._held[(window.key, start)] = _Held(window.counts, window.version, window.backfill)
        for test in self._tests(window.key, window.counts):
            if held and test.series.kind in _COUNT_KINDS:
                continue  # judged and learned when released, on these counts
            baseline = self._baseline(test.series)
            expected = self._expected(test, baseline, start)
            found = (
                []
                if window.backfill
                else self._judge(test, baseline, start, window.version, expected, pair=False)
            )
            before = old.get(test.series)
            # Nothing of it was exposed on time (a late channel's export): it never entered
            # the run of windows, so it enters now, in start order.
            unseen = test.rate_series and (before is None or before.trials == 0)
            if unseen and not found and not window.backfill and expected is not None and sums:
                found = self._accumulate(test, baseline, start, window.version, expected)
            alerts += found + self._retractions(test.series, start, found, window.version)
            gained = test.hits - (before.hits if before is not None else 0)
            if not test.rate_series and gained > 0:
                # Counts later than they are judged (for a late channel: later than its
                # wait) fall short of what the baseline learns once they land.
                self._late[test.series] = max(self._late.get(test.series, start), start)
            if before is not None and not found:  # an alerting window taught nothing extra
                baseline.revise(
                    self._params, start, test.hits - before.hits, test.trials - before.trials
                )
        return alerts

    def _retractions(
        self, series: Series, start: int, found: list[Alert], version: int
    ) -> list[Alert]:
        still = {a.rule for a in found}
        out = []
        for rule in RULES:
            earlier = self._alerted.get((series, start, rule))
            if earlier is not None and rule not in still and not earlier.retracted:
                withdrawn = retracted(earlier, version)
                self._alerted[(series, start, rule)] = withdrawn
                out.append(withdrawn)
        return out

    # -- memory -----------------------------------------------------------------------------

    def _baseline(self, series: Series) -> Baseline:
        baseline = self._baselines.get(series)
        if baseline is None:
            baseline = Baseline(self._params)
            exposures = self._baselines.get(Series(FRICTION, series.scope, EXPOSURES))
            if series.kind == FRICTION and series.name != EXPOSURES and exposures is not None:
                baseline.start_silent(exposures)
            self._baselines[series] = baseline
        return baseline

    def _forget(self, start: int) -> None:
        horizon = start - int(self.config.forget_after.total_seconds() * 1000)
        for key in [k for k, last in self._last_data.items() if last < horizon]:
            del self._last_data[key]
            self._names.pop(key, None)
            kinds, scope = _SERIES_KINDS.get(key[0], ()), key[1]
            for series in [s for s in self._baselines if s.scope == scope and s.kind in kinds]:
                del self._baselines[series]
                self._last.pop(series, None)
                self._thresholds.pop(series, None)
                self._runs.pop(series, None)
                self._late.pop(series, None)
            for held in [h for h in self._held if h[0] == key]:
                del self._held[held]
            if key[0] == STAGE:
                self.progressions.forget(scope)
        keep = start - int(self.config.revisable_for.total_seconds() * 1000)
        for stale in [k for k in self._alerted if k[1] < keep]:
            del self._alerted[stale]


def counts_wait(config: DetectorConfig, key: WindowKey) -> bool:
    """Whether the counts of `key`'s windows (stage entries, source volume) are held
    `late_count_wait` before they are judged: a key only late channels feed, when there is
    a wait (with none they are judged on close, like everyone else's)."""
    return (
        key[0] != FRICTION
        and config.late_keys is not None
        and config.late_count_wait > timedelta(0)
        and config.late_keys(key)
    )


def holds_counts(config: DetectorConfig, series: Series) -> bool:
    """`counts_wait` by series: whether `series` is one of the held counts."""
    if series.kind not in _COUNT_KINDS:
        return False
    return counts_wait(config, (STAGE if series.kind == "entries" else VOLUME, series.scope))


def _in_flight_text(
    series: Series, found: InFlight, begin: datetime, end: datetime, h: float
) -> str:
    """One line: the stage's progression observed vs expected at the entrants' age."""
    journey, _, rest = series.scope.partition(":")
    span = f"{begin:%Y-%m-%d %H:%M}-{end:%H:%M} UTC"
    share = found.observed / found.expected if found.expected else 0.0
    return (
        f"progression stalled at {journey}:{rest}: {found.observed} of the entrants in flight "
        f"moved on vs {found.expected:.1f} expected at their age ({share:.0%} of normal; "
        f"{found.entrants} entrants in flight), {span} (CUSUM {found.value:.1f} >= {h:.1f})"
    )
