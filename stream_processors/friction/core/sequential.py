"""Evidence that accumulates over windows: CUSUM tests on log-likelihood ratios
(docs/concepts.md §6, "Evidence that accumulates").

A per-window test needs a change big enough to show in one or two windows. A moderate change
that lasts (a drop-off share from 30% to 72% at 20 journeys a window, a signal that doubles
on a touchpoint with 10 exposures a window) never shows in one window at a strict alpha, yet
its evidence grows with every window it lasts. Page's CUSUM adds each window's
log-likelihood ratio of a designed change against the baseline,

    S_t = min(cap, max(0, S_{t-1} + LLR_t)),

and signals while `S_t >= h` and stands at its run's highest. Under the baseline the LLR
drifts below zero and S keeps returning to 0; under the change it climbs by about the
Kullback-Leibler divergence per window.

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
from dataclasses import dataclass, field
from typing import Any

LN_MILLION = math.log(1e6)
LN_10K = math.log(1e4)


@dataclass(frozen=True, slots=True)
class CusumConfig:
    h: float = LN_MILLION  # an alarm: at least e^h windows between false ones, on average
    critical_h: float = math.log(1e9)
    rise: float = 2.0  # the designed rise of a count or a signal rate (a doubling)
    fall: float = 0.3  # ... the designed fall of the progression hazard (a moderate one)
    stall: float = 0.1  # ... and its stall, beside it (`progression.py`: both, less ln 2)
    odds: float = 3.0  # ... the designed odds ratio of a drop-off share
    cap_over_h: float = 1.5  # S is capped at this times h, so it comes back soon after
    # The progression test's own threshold (`progression.py`, "Threshold"): a stage series'
    # entrants in flight alarm at `progression_h`, at least e^h windows (10^4: 35 days) to a
    # false alarm per stage series, so that a stall is found from the windows 15 minutes allow.
    progression_h: float = LN_10K

    @property
    def cap(self) -> float:
        return self.h * self.cap_over_h


# Windows of a run kept to place its change: a run longer than this counts from its oldest.
MAX_RUN_WINDOWS = 48
Step = tuple[int, float, int, float, int]  # (window start, LLR, observed, expected, trials)


@dataclass(slots=True)
class Run:
    """One CUSUM and the windows of its current run (since it last stood below 1).

    The run's change is placed at the latest windows whose LLRs alone reach h (the evidence
    the alarm stands on; else the suffix with the largest sum), so its first window and
    figures describe the change, not the noise before it. `at_peak` says whether this
    window's S is the run's highest: an alarm pages only then, so once a change ends the run
    stops paging at its first window that leans back to normal, however long S takes to
    come back down."""

    value: float = 0.0
    peak: float = 0.0
    at_peak: bool = False
    steps: list[Step] = field(default_factory=list)
    h: float = LN_MILLION  # the alarm's threshold, as the last update had it
    # The run alarmed and the change it found still holds: a caller that pages on a level
    # (a count that collapsed) keeps alerting while it does, not only at the run's peaks.
    alarmed: bool = False

    def update(
        self,
        llr: float,
        start_ms: int,
        *,
        observed: int,
        expected: float,
        trials: int,
        cap: float,
        h: float = LN_MILLION,
    ) -> None:
        """Add one window's LLR. Below 1 (a likelihood ratio under e: noise) the run starts
        again empty."""
        self.h = h
        value = self.value + llr
        if value < 1.0:
            self.value, self.peak, self.at_peak, self.steps = max(0.0, value), 0.0, False, []
            self.alarmed = False
            return
        self.value = min(value, cap)
        self.steps.append((start_ms, llr, observed, expected, trials))
        if len(self.steps) > MAX_RUN_WINDOWS:
            del self.steps[0]
        self.at_peak = self.value >= self.peak - 1e-9
        self.peak = max(self.peak, self.value)

    def _change(self) -> list[Step]:
        """The latest windows whose LLRs alone reach h (the evidence the alarm stands on),
        else the suffix with the largest sum."""
        best, total, first = -math.inf, 0.0, len(self.steps)
        for i in range(len(self.steps) - 1, -1, -1):
            total += self.steps[i][1]
            if total >= self.h:
                return self.steps[i:]
            if total > best:
                best, first = total, i
        return self.steps[first:]

    @property
    def since_ms(self) -> int | None:
        change = self._change()
        return change[0][0] if change else None

    @property
    def windows(self) -> int:
        return len(self._change())

    @property
    def observed(self) -> int:
        return sum(s[2] for s in self._change())

    @property
    def expected(self) -> float:
        return sum(s[3] for s in self._change())

    @property
    def trials(self) -> int:
        return sum(s[4] for s in self._change())

    def recent(self, min_expected: float) -> tuple[int, float]:
        """Observed and expected of the latest windows of the run whose expectation reaches
        `min_expected` (all of them if none does): what the series does now."""
        observed, expected = 0, 0.0
        for step in reversed(self.steps):
            observed += step[2]
            expected += step[3]
            if expected >= min_expected:
                break
        return observed, expected

    def to_json(self) -> list[object]:
        steps = [list(s) for s in self.steps]
        return [self.value, self.peak, self.at_peak, steps, self.alarmed]

    @classmethod
    def from_json(cls, row: list[Any]) -> Run:
        if len(row) not in (4, 5):
            return cls(max(0.0, float(row[0])))  # a run written before it kept its windows
        value, peak, at_peak, steps = row[:4]
        alarmed = bool(row[4]) if len(row) == 5 else False  # 4: before runs kept their alarm
        kept = [(int(a), float(b), int(c), float(d), int(e)) for a, b, c, d, e in steps]
        return cls(float(value), float(peak), bool(at_peak), kept, alarmed=alarmed)


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
