"""Evidence that accumulates over windows: CUSUM tests on log-likelihood ratios
(docs/concepts.md §6, "Evidence that accumulates").

A per-window test needs a change big enough to show in one or two windows. A moderate change
that lasts (a drop-off share from 30% to 72% at 20 journeys a window, a signal that doubles
on a touchpoint with 10 exposures a window) never shows in one window at a strict alpha, yet
its evidence grows with every window it lasts. Page's CUSUM adds each window's
log-likelihood ratio of a designed change against the baseline,

    S_t = min(cap, max(0, S_{t-1} + LLR_t)),

and signals while `S_t >= h`. Under the baseline the LLR drifts below zero and S keeps
returning to 0; under the change it climbs by about the Kullback-Leibler divergence per window.

**False-alarm control.** For a CUSUM on a true likelihood ratio, the mean number of windows
to a false alarm is at least `e^h` (Lorden 1971). With `h = ln(10^6)` that is a million
windows per test, 9.5 years of 5-minute windows. A series runs at most a few such tests
(its direction of change), so 100 series see fewer than 0.03 false alarms a day while
their baselines are right; what a baseline gets wrong (it is learned) is what the detection
bench measures. Counts are scaled by the learned dispersion first (a quasi-likelihood), as
the per-window tests are.

How soon a change is found: about `h / KL` windows, KL being the expected LLR per window under
the change (`windows_to_detect`), which `journeys alerts coverage` lists per series.

Pure: plain floats in and out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LN_MILLION = math.log(1e6)


@dataclass(frozen=True, slots=True)
class CusumConfig:
    h: float = LN_MILLION  # an alarm: at least e^h windows between false ones, on average
    critical_h: float = math.log(1e9)
    rise: float = 2.0  # the designed rise of a count or a signal rate (a doubling)
    fall: float = 0.3  # ... the designed fall of a count and of the progression hazard
    odds: float = 3.0  # ... the designed odds ratio of a drop-off share
    cap_over_h: float = 1.5  # S is capped at this times h, so it comes back soon after

    @property
    def cap(self) -> float:
        return self.h * self.cap_over_h


@dataclass(slots=True)
class Run:
    """One CUSUM and the evidence of its current run (since it last left 0): the windows it
    spans, what was observed, what the baseline expected, and the volume behind them."""

    value: float = 0.0
    since_ms: int | None = None
    windows: int = 0
    observed: int = 0
    expected: float = 0.0
    trials: int = 0

    def update(
        self,
        llr: float,
        start_ms: int,
        *,
        observed: int,
        expected: float,
        trials: int,
        cap: float,
    ) -> None:
        """Add one window's LLR. The run's figures start again while S stands below 1 (a
        likelihood ratio under e: noise), so they, and its first window, describe the change
        and not the quiet windows before it."""
        value = self.value + llr
        if value < 1.0:
            self.value, self.since_ms, self.windows = max(0.0, value), None, 0
            self.observed, self.expected, self.trials = 0, 0.0, 0
            return
        if self.since_ms is None:
            self.since_ms = start_ms
        self.value = min(value, cap)
        self.windows += 1
        self.observed += observed
        self.expected += expected
        self.trials += trials

    def to_json(self) -> list[object]:
        return [self.value, self.since_ms, self.windows, self.observed, self.expected, self.trials]

    @classmethod
    def from_json(cls, row: list[object]) -> Run:
        value, since, windows, observed, expected, trials = row
        return cls(
            float(str(value)),
            None if since is None else int(str(since)),
            int(str(windows)),
            int(str(observed)),
            float(str(expected)),
            int(str(trials)),
        )


def poisson_llr(count: float, mean: float, ratio: float) -> float:
    """log P(count | mean * ratio) / P(count | mean), Poisson."""
    if mean <= 0.0:
        return 0.0
    return count * math.log(ratio) - (ratio - 1.0) * mean


def binomial_llr(hits: float, trials: float, p0: float, p1: float) -> float:
    """log P(hits | trials, p1) / P(hits | trials, p0), binomial; p0 and p1 in (0, 1)."""
    if trials <= 0:
        return 0.0
    return hits * math.log(p1 / p0) + (trials - hits) * math.log((1.0 - p1) / (1.0 - p0))


def odds_shift(p0: float, odds: float) -> float:
    """The share whose odds are `odds` times those of `p0`."""
    o = p0 / (1.0 - p0) * odds
    return o / (1.0 + o)


def poisson_kl(mean: float, true_ratio: float, design_ratio: float) -> float:
    """The expected Poisson LLR per window (designed `design_ratio`) when the mean is really
    `true_ratio` times `mean`."""
    return mean * true_ratio * math.log(design_ratio) - (design_ratio - 1.0) * mean


def binomial_kl(trials: float, p0: float, p_true: float, p_design: float) -> float:
    """The expected binomial LLR per window (designed `p_design`) when the share is `p_true`."""
    return trials * (
        p_true * math.log(p_design / p0) + (1.0 - p_true) * math.log((1.0 - p_design) / (1.0 - p0))
    )


def windows_to_detect(h: float, drift: float) -> float | None:
    """About how many windows a CUSUM with threshold h takes at `drift` LLR per window
    (Wald's approximation); None when it would never get there."""
    if drift <= 0.0:
        return None
    return max(1.0, h / drift)
