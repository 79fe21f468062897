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
`(g_k - g_{k-1}) / (1 - g_{k-1})` when nothing is wrong. The window's progressions are tested
against that in a lower CUSUM (`sequential.py`) whose designed change is the hazard falling to
`fall` of normal: the likelihood ratio of what each cohort did, summed. So the test compares
progressions seen so far against those expected at the entrants' age, and a cohort only
counts for the entrants it still has (old cohorts add little, young ones most).

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

from collections.abc import Mapping
from dataclasses import dataclass, field

from stream_processors.friction.core.baselines import Baseline, BaselineParams
from stream_processors.friction.core.sequential import CusumConfig, Run, binomial_llr
from stream_processors.friction.core.series import ENTERED, LAG_NAMES, PROGRESS_LAGS

_MIN_HAZARD = 1e-3
_MAX_HAZARD = 0.999


@dataclass(slots=True)
class StageProgress:
    """One stage series: its cohorts in flight (start -> [entered, progressed so far]), its
    curve (a baseline per lag) and its CUSUM."""

    cohorts: dict[int, list[int]]
    curve: list[Baseline]
    run: Run = field(default_factory=Run)


@dataclass(frozen=True, slots=True)
class InFlight:
    """One window's test of a stage: the CUSUM's run (progressions seen vs expected at the
    entrants' age since it left 0) and the entrants in flight now."""

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
        the window had none): test its progressions, then learn the curve."""
        stage = self.stage(scope)
        entered = counts.get(ENTERED, 0)
        if entered > 0:
            stage.cohorts[start] = [entered, 0]
        warm = all(b.warm(self.params) for b in stage.curve)
        llr, observed, expected, remaining_total = 0.0, 0, 0.0, 0
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
                design = hazard * self.cusum.fall
                llr += binomial_llr(min(moved, remaining), remaining, hazard, design)
                observed += moved
                expected += remaining * hazard
                remaining_total += remaining
            cohort[1] = before + moved
            stage.curve[k].learn(self.params, cohort_start, cohort[1], n, two_sided=True)
        self._forget_old(stage, start)
        if warm:
            stage.run.update(
                llr,
                start,
                observed=observed,
                expected=expected,
                trials=remaining_total,
                cap=self.cusum.cap,
                h=self.cusum.h,
            )
        run = stage.run
        entrants = sum(n for n, _ in stage.cohorts.values())
        return InFlight(
            run.value,
            run.since_ms,
            run.windows,
            run.observed,
            run.expected,
            entrants,
            warm,
            run.at_peak,
        )

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
        oldest = start - (PROGRESS_LAGS - 1) * self.window_ms
        for gone in [s for s in stage.cohorts if s < oldest]:
            del stage.cohorts[gone]

    def forget(self, scope: str) -> None:
        self.stages.pop(scope, None)
