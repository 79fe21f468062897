"""Progression that stopped, found before the stage's time limit passes (docs/concepts.md §6,
"Progression in flight").

A drop-off is only known when a stage's time limit passes (30 minutes at checkout), so a
checkout whose button silently does nothing shows as drop-offs half an hour late. But its
entrants stop moving on at once. Per stage series (`<journey>:<stage>:<stage_channel>`), this
module keeps the entry cohorts still in flight (entries per window, for `PROGRESS_LAGS`
windows) and how many of each have moved on so far, from the stage windows' `entered` and
`progressed+<k>` counters (`series.count_progress`), and learns the stage's
**progression-by-age curve**: per lag k, the share of a cohort that has moved on by the end
of the k-th window after its entry window, a `Baseline` per lag (so seasonal, clipped and
warmed up like every other baseline; its time of day is the cohort's).

At every closed window, each cohort in flight at lag k still has `entered - progressed`
entrants, each of whom moves on in this window with the curve's hazard
`(g_k - g_{k-1}) / (1 - g_{k-1})` when nothing is wrong. What each cohort did is its
log-likelihood ratio (binomial) of a designed change, the hazard falling to a share of
normal, against that; a cohort only counts for the entrants it still has.

**A change point among the cohorts.** A stall reaches the entrants who try to move on from
some moment: the young cohorts stop at once, while the old cohorts' late movers (the bank app
opened half an hour ago) still complete. Summed per window, those old cohorts cancel the
young ones' evidence (in the detection bench's stall at web checkout, ~17 entries a window,
that test reached h only after five windows). So each
cohort keeps its own log-likelihood ratio, summed over the windows it has been in flight, and
the test is Page's CUSUM in cohort order: the largest sum over the cohorts from some entry
window on (the cohorts that left flight carried in a capped CUSUM of their sums). Two designs
run side by side, a stall (`stall` of normal: nobody gets through) and a moderate fall
(`fall`: a broken payment method), and the evidence is the stronger of the two less ln 2.
False alarms: under a right curve, for every change point the product of the cohorts'
likelihood ratios is a martingale of mean 1, so the Shiryaev-Roberts sum over change points
and designs grows by 1 a window; the CUSUM is at most its logarithm plus ln 2, so the mean run
to a false alarm at `h` is still at least `e^h` windows (as `sequential.py` states).

**Threshold.** The test alarms at its own `CusumConfig.progression_h` (ln 10^4 = 9.2), not
the h = ln 10^6 of the tests on closed counts: a stall must be found from the windows that
15 minutes of event time close (an alert published by 14:15 stands on windows ending by
14:10), and those carry about 9.4 nats of a stall to 5% at 17 entries a window even for the
likelihood ratio that knows the change's start and size (the detection bench, traced; its
entrants' late movers are not due yet). False-alarm control, stated: at least 10^4 windows
(35 days) on average between false alarms per stage series, the bound above; measured in
the detection bench: one in 7 incident-free days over its 22 tested stage series.

**Late channels.** Only progress on the stage's own channel counts by age (the partitions count
`progressed+<k>` only when the journey moved on where it reached the stage): progress through
another channel, which for stores and call centers arrives in late exports, is left out of the
curve and of the test, so an export that has not come yet, or a store source that went quiet,
never looks like a stall at web checkout (those show in drop-offs and volume). And the curve is
learned from what the watermark has seen when a cohort reaches each age: the first version of
each window, as the detector closes it; a late version still corrects the cohorts in flight.

Pure: counts in, figures out; the caller persists `StageProgress` (`detector_state.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from stream_processors.friction.core.baselines import Baseline, BaselineParams
from stream_processors.friction.core.sequential import CusumConfig, Run, binomial_llr
from stream_processors.friction.core.series import ENTERED, LAG_NAMES, PROGRESS_LAGS

_MIN_HAZARD = 1e-3
_MAX_HAZARD = 0.999


# The designed changes tested side by side (`CusumConfig.stall`, `.fall`). Per cohort in
# flight: the LLR of each design, then the progressions seen and expected in the windows
# tested.
_DESIGNS = ("stall", "fall")
_OBSERVED, _EXPECTED = len(_DESIGNS), len(_DESIGNS) + 1
Evidence = list[float]


def _empty() -> Evidence:
    return [0.0] * (len(_DESIGNS) + 2)


@dataclass(slots=True)
class StageProgress:
    """One stage series: its cohorts in flight (start -> [entered, progressed so far]), its
    curve (a baseline per lag), each cohort's evidence so far, the carried CUSUM of the
    cohorts that left flight (per design: [S, observed, expected, first cohort]) and the
    run of its statistic (value, peak, at_peak)."""

    cohorts: dict[int, list[int]]
    curve: list[Baseline]
    run: Run = field(default_factory=Run)
    evidence: dict[int, Evidence] = field(default_factory=dict)
    carry: list[list[float]] = field(default_factory=lambda: [[0.0, 0, 0.0, 0] for _ in _DESIGNS])


@dataclass(frozen=True, slots=True)
class InFlight:
    """One window's test of a stage: the CUSUM's value (the stronger design less ln 2), its
    first cohort (`since_ms`) and the windows since, the progressions those cohorts made vs
    expected at their age, and the entrants in flight now."""

    value: float
    since_ms: int | None
    windows: int
    observed: int
    expected: float
    entrants: int
    tested: bool  # False while the curve is not warm: nothing is expected yet
    at_peak: bool = False  # this window's S is its run's highest (see `sequential.Run`)


class Progressions:
    """Every stage series' `StageProgress`; feed it each closed window of a stage series."""

    def __init__(self, params: BaselineParams, window_ms: int, cusum: CusumConfig) -> None:
        self.params = params
        self.window_ms = window_ms
        self.cusum = cusum
        self.stages: dict[str, StageProgress] = {}

    def stage(self, scope: str) -> StageProgress:
        found = self.stages.get(scope)
        if found is None:
            curve = [Baseline(self.params) for _ in range(PROGRESS_LAGS)]
            found = self.stages[scope] = StageProgress({}, curve)
        return found

    def close(self, scope: str, start: int, counts: Mapping[str, int]) -> InFlight:
        """The on-time first close of window `start` of a stage series (counts empty when
        the window had none): add each cohort's evidence, test, then learn the curve."""
        stage = self.stage(scope)
        entered = counts.get(ENTERED, 0)
        if entered > 0:
            stage.cohorts[start] = [entered, 0]
        warm = all(b.warm(self.params) for b in stage.curve)
        designs = (self.cusum.stall, self.cusum.fall)
        for k in range(PROGRESS_LAGS):
            cohort_start = start - k * self.window_ms
            cohort = stage.cohorts.get(cohort_start)
            if cohort is None:
                continue
            moved = max(0, counts.get(LAG_NAMES[k], 0))
            n, before = cohort
            remaining = max(0, n - before)
            hazard = self.hazard(stage, k, cohort_start) if warm else None
            if hazard is not None and remaining > 0:
                seen = min(moved, remaining)
                evidence = stage.evidence.setdefault(cohort_start, _empty())
                for j, fall in enumerate(designs):
                    evidence[j] += binomial_llr(seen, remaining, hazard, hazard * fall)
                evidence[_OBSERVED] += moved
                evidence[_EXPECTED] += remaining * hazard
            cohort[1] = before + moved
            stage.curve[k].learn(self.params, cohort_start, cohort[1], n, two_sided=True)
        self._forget_old(stage, start)
        if warm:
            self._test(stage, start)
        run = stage.run
        entrants = sum(n for n, _ in stage.cohorts.values())
        since = int(run.steps[0][0]) if run.steps else None
        windows = (start - since) // self.window_ms + 1 if since is not None else 0
        observed, expected = (run.steps[0][2], run.steps[0][3]) if run.steps else (0, 0.0)
        return InFlight(run.value, since, windows, observed, expected, entrants, warm, run.at_peak)

    def _test(self, stage: StageProgress, start: int) -> None:
        """The CUSUM in cohort order (module docstring), per design: the largest sum of
        the cohorts' evidence from some entry window on, the carried run of the cohorts
        that left flight before them; the stronger design less ln 2 is the run's value."""
        best: tuple[float, int, int, float] | None = None  # value, since, observed, expected
        newest_first = sorted(stage.evidence, reverse=True)
        for j in range(len(_DESIGNS)):
            total, observed, expected = 0.0, 0, 0.0
            for cohort_start in newest_first:
                evidence = stage.evidence[cohort_start]
                total += evidence[j]
                observed += int(evidence[_OBSERVED])
                expected += evidence[_EXPECTED]
                if best is None or total > best[0]:
                    best = (total, cohort_start, observed, expected)
            carried, seen, wanted, since = stage.carry[j]
            if carried > 0.0 and (best is None or carried + total > best[0]):
                best = (carried + total, int(since), int(seen) + observed, wanted + expected)
        run = stage.run
        value = 0.0 if best is None else best[0] - math.log(len(_DESIGNS))
        if best is None or value < 1.0:  # a likelihood ratio under e: noise, start again
            run.value, run.peak, run.at_peak, run.steps = max(0.0, value), 0.0, False, []
            return
        run.value = value
        run.at_peak = value >= run.peak - 1e-9
        run.peak = max(run.peak, value)
        # The run's figures: its first cohort, progressions seen and expected since.
        run.steps = [(best[1], value, best[2], best[3], 0)]

    def revise(
        self, scope: str, start: int, counts: Mapping[str, int], previous: Mapping[str, int]
    ) -> None:
        """A late version of a closed window: correct the cohorts in flight (the curve keeps
        what the watermark saw, see the module docstring)."""
        stage = self.stages.get(scope)
        if stage is None:
            return
        cohort = stage.cohorts.get(start)
        if cohort is not None:
            cohort[0] += counts.get(ENTERED, 0) - previous.get(ENTERED, 0)
        for k, name in enumerate(LAG_NAMES):
            moved = counts.get(name, 0) - previous.get(name, 0)
            held = stage.cohorts.get(start - k * self.window_ms)
            if moved and held is not None:
                held[1] += moved

    def hazard(self, stage: StageProgress, k: int, cohort_start: int) -> float | None:
        """The share of a cohort's entrants still in the stage that move on in its k-th
        window after entry, by the learned curve (None when the curve says none are left)."""
        g = self._share(stage, k, cohort_start)
        before = self._share(stage, k - 1, cohort_start) if k > 0 else 0.0
        if g is None or before is None or before >= _MAX_HAZARD:
            return None
        hazard = (max(g, before) - before) / (1.0 - before)
        # A curve that expects (next to) nobody to move on at this age expects nothing to
        # test: a floor would invent evidence out of silence.
        return None if hazard < _MIN_HAZARD else min(_MAX_HAZARD, hazard)

    def expected_share(self, scope: str, k: int, cohort_start: int) -> float | None:
        """The learned share of a cohort moved on by the end of lag k (for reports)."""
        stage = self.stages.get(scope)
        return None if stage is None else self._share(stage, k, cohort_start)

    def _share(self, stage: StageProgress, k: int, cohort_start: int) -> float | None:
        rate = stage.curve[k].rate(self.params, cohort_start)
        return None if rate is None else min(1.0, max(0.0, rate))

    def _forget_old(self, stage: StageProgress, start: int) -> None:
        """Cohorts past the last lag leave flight; their evidence joins each design's
        carried CUSUM (capped, so it comes back soon after a change ends)."""
        oldest = start - (PROGRESS_LAGS - 1) * self.window_ms
        for gone in [s for s in stage.cohorts if s < oldest]:
            del stage.cohorts[gone]
        for gone in sorted(s for s in stage.evidence if s < oldest):
            evidence = stage.evidence.pop(gone)
            for j, carry in enumerate(stage.carry):
                value = carry[0] + evidence[j]
                if value <= 0.0:
                    stage.carry[j] = [0.0, 0, 0.0, 0]
                elif carry[0] <= 0.0:
                    stage.carry[j] = [min(value, self.cusum.cap), *evidence[_OBSERVED:], gone]
                else:
                    seen, wanted = carry[1] + evidence[_OBSERVED], carry[2] + evidence[_EXPECTED]
                    stage.carry[j] = [min(value, self.cusum.cap), seen, wanted, carry[3]]

    def forget(self, scope: str) -> None:
        self.stages.pop(scope, None)
