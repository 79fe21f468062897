"""Baselines learned per series from the stream itself, and the Poisson tails they are
tested with (docs/concepts.md §6).

A baseline is an expected rate: hits per trial (signals per exposure, drop-offs per journey
leaving a stage) or, with one trial per window, an expected count per window (entries,
events of a source). It is a ratio of exponentially decayed sums, so busy windows weigh more
than quiet ones and there is no start-up bias. Three things make it robust:

- **Outliers are clipped before they are learned**: a window more than `clip_sigma` standard
  deviations off its expectation is learned as if it were at that bound, so an incident does
  not teach the baseline that the incident is normal. After `relearn_after` such windows in a
  row the level has really moved, and windows are learned as they are until one fits again.
- **Time of day**: each window also feeds a bucket of its time in the period (hour of day by
  default); once a bucket has `season_min_periods` periods of history it is the expectation.
  Until then a bucket learns windows unclipped: a quiet night is what it is there to learn.
- **Overdispersion**: real counts come in clumps (a retried error, a double page view), so
  the spread is learned too (`dispersion`, the decayed mean squared Pearson residual, kept
  between 1 and `max_dispersion`) and the detector scales its test by it, as a quasi-Poisson
  model does.

Pure and cheap: a baseline is a few floats and three small arrays.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from datetime import timedelta

_MAX_TERMS = 100_000
_MIN_DISPERSION_EXPECTED = 0.25


@dataclass(frozen=True, slots=True)
class BaselineConfig:
    window: timedelta = timedelta(minutes=5)
    half_life_windows: float = 36.0  # the overall level: 3 hours of 5-minute windows
    warmup_windows: int = 12  # windows learned before the baseline is trusted
    season_period: timedelta = timedelta(days=1)
    season_buckets: int = 24  # 24 per day: hour of day; 1 turns seasonality off
    season_min_periods: float = 3.0
    season_half_life_periods: float = 7.0
    clip_sigma: float = 3.0
    relearn_after: int = 24
    dispersion_half_life_windows: float = 288.0
    max_dispersion: float = 4.0
    dispersion_sigma: float = 6.0  # windows further off than this teach no spread

    @property
    def window_ms(self) -> int:
        return int(self.window.total_seconds() * 1000)

    @property
    def bucket_ms(self) -> int:
        return int(self.season_period.total_seconds() * 1000) // self.season_buckets

    @property
    def bucket_windows_per_period(self) -> float:
        return max(1.0, self.bucket_ms / self.window_ms)


class BaselineParams:
    """Decay factors and thresholds derived once from a config, shared by all baselines."""

    __slots__ = ("bucket_decay", "bucket_min", "bucket_ms", "config", "decay", "disp_decay")

    def __init__(self, config: BaselineConfig) -> None:
        self.config = config
        self.decay = 0.5 ** (1.0 / config.half_life_windows)
        per_period = config.bucket_windows_per_period
        self.bucket_decay = 0.5 ** (1.0 / (config.season_half_life_periods * per_period))
        self.bucket_min = config.season_min_periods * per_period
        self.bucket_ms = config.bucket_ms
        self.disp_decay = 0.5 ** (1.0 / config.dispersion_half_life_windows)


class Baseline:
    """One series' expected rate; see the module docstring."""

    __slots__ = ("_disp", "_disp_weight", "_seasonal", "hits", "streak", "trials", "windows")

    def __init__(self, params: BaselineParams) -> None:
        self.hits = 0.0
        self.trials = 0.0
        self.windows = 0
        self.streak = 0  # windows in a row that were off their expectation
        self._disp = 0.0
        self._disp_weight = 0.0
        buckets = params.config.season_buckets
        # Per bucket: decayed hits, decayed trials, windows seen.
        self._seasonal = array("d", bytes(8 * 3 * buckets)) if buckets > 1 else None

    def warm(self, params: BaselineParams) -> bool:
        return self.windows >= params.config.warmup_windows and self.trials > 0

    def start_silent(self, exposures: Baseline) -> None:
        """Start a signal's rate as zero hits in every exposure its scope has had, from the
        scope's count of exposures per window: a first signal is news, not a first sample."""
        self.trials = exposures.hits
        self.windows = exposures.windows
        mine, theirs = self._seasonal, exposures._seasonal
        if mine is not None and theirs is not None and len(mine) == len(theirs):
            for i in range(0, len(mine), 3):
                mine[i + 1] = theirs[i]
                mine[i + 2] = theirs[i + 2]

    def rate(self, params: BaselineParams, start_ms: int) -> float | None:
        """The expected hits per trial for the window starting at `start_ms`."""
        seasonal = self._seasonal
        if seasonal is not None:
            i = 3 * self._bucket(params, start_ms)
            if seasonal[i + 2] >= params.bucket_min and seasonal[i + 1] > 0:
                return seasonal[i] / seasonal[i + 1]
        return self.hits / self.trials if self.trials > 0 else None

    def seasonal_ready(self, params: BaselineParams, start_ms: int) -> bool:
        """Whether the time-of-day bucket of `start_ms` is the expectation (or the baseline
        has no time of day): a count that falls at night is judged against the night."""
        seasonal = self._seasonal
        if seasonal is None:
            return True
        return seasonal[3 * self._bucket(params, start_ms) + 2] >= params.bucket_min

    def dispersion(self, params: BaselineParams) -> float:
        """At least 1 (Poisson), at most `max_dispersion`: a baseline that lags a level
        change also inflates the spread, and that must not silence a series for good."""
        if self._disp_weight < 1.0:
            return 1.0
        return min(params.config.max_dispersion, max(1.0, self._disp / self._disp_weight))

    def learn(
        self, params: BaselineParams, start_ms: int, hits: float, trials: float, *, two_sided: bool
    ) -> bool:
        """Learn one window; returns True when it was off its expectation (and clipped,
        unless the level has moved for `relearn_after` windows)."""
        learned, off = hits, False
        expected_rate = self.rate(params, start_ms) if self.warm(params) else None
        if expected_rate is not None and trials > 0:
            learned, off = self._clip(params, hits, expected_rate * trials, two_sided)
        self.streak = self.streak + 1 if off else 0
        if off and self.streak > params.config.relearn_after:
            learned = hits
        self.add(params, start_ms, learned, trials, raw=hits)
        return off

    def add(
        self,
        params: BaselineParams,
        start_ms: int,
        hits: float,
        trials: float,
        raw: float | None = None,
    ) -> None:
        """Decay and add one window's clipped counts. A time-of-day bucket that is not yet
        in use takes the `raw` count instead: it was clipped against the overall level,
        which is exactly what the bucket is there to correct (a quiet night is no outlier)."""
        d = params.decay
        self.hits = self.hits * d + hits
        self.trials = self.trials * d + trials
        self.windows += 1
        seasonal = self._seasonal
        if seasonal is not None:
            i = 3 * self._bucket(params, start_ms)
            b = params.bucket_decay
            mature = seasonal[i + 2] >= params.bucket_min
            value = hits if mature or raw is None else raw
            seasonal[i] = seasonal[i] * b + value
            seasonal[i + 1] = seasonal[i + 1] * b + trials
            seasonal[i + 2] += 1

    def revise(self, params: BaselineParams, start_ms: int, hits: float, trials: float) -> None:
        """Apply a late correction of a learned window (the difference of two versions),
        without decay: close enough for the small late updates windows allow."""
        self.hits = max(0.0, self.hits + hits)
        self.trials = max(0.0, self.trials + trials)
        seasonal = self._seasonal
        if seasonal is not None:
            i = 3 * self._bucket(params, start_ms)
            seasonal[i] = max(0.0, seasonal[i] + hits)
            seasonal[i + 1] = max(0.0, seasonal[i + 1] + trials)

    def _clip(
        self, params: BaselineParams, hits: float, expected: float, two_sided: bool
    ) -> tuple[float, bool]:
        spread = math.sqrt(self.dispersion(params) * max(expected, 1.0))
        bound = params.config.clip_sigma
        high = hits > expected + bound * spread
        low = two_sided and hits < expected - bound * spread
        # The spread is learned from every window but the wild ones (an incident is not
        # spread): a clumped series shows its clumps in the tail that the clip bound cuts.
        # The squared Pearson residual has mean `dispersion` at any expectation, but below
        # _MIN_DISPERSION_EXPECTED a single hit swings it too far to be worth learning.
        wild = abs(hits - expected) > params.config.dispersion_sigma * spread
        if not wild and expected >= _MIN_DISPERSION_EXPECTED:
            squared = (hits - expected) ** 2 / expected
            self._disp = self._disp * params.disp_decay + squared
            self._disp_weight = self._disp_weight * params.disp_decay + 1.0
        if high:
            return expected + bound * spread, True
        if low:
            return max(0.0, expected - bound * spread), True
        return hits, False

    def _bucket(self, params: BaselineParams, start_ms: int) -> int:
        return (start_ms // params.bucket_ms) % params.config.season_buckets


def poisson_upper(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean), summed exactly over the tail. At or below the mean
    there is no evidence of an excess, and 1.0 is returned without summing."""
    if k <= 0 or k <= mean:
        return 1.0
    if mean <= 0:
        return 0.0
    term = math.exp(k * math.log(mean) - mean - math.lgamma(k + 1))
    total, i = term, k
    while term > total * 1e-16 and i - k < _MAX_TERMS:
        i += 1
        term *= mean / i
        total += term
    return min(1.0, total)


def poisson_lower(c: int, mean: float) -> float:
    """P(X <= c) for X ~ Poisson(mean), summed exactly. At or above the mean there is no
    evidence of a shortfall, and 1.0 is returned without summing."""
    if c >= mean:
        return 1.0
    if c < 0:
        return 0.0
    term = math.exp(c * math.log(mean) - mean - math.lgamma(c + 1)) if c > 0 else math.exp(-mean)
    total, i = term, c
    while i > 0 and term > total * 1e-16:
        term *= i / mean
        i -= 1
        total += term
    return min(1.0, total)
