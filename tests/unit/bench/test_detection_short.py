"""The detection bench, short (`make bench-detection` runs it whole): one day of warm-up,
then two of its scenarios up to two hours past their incident, through the same cores and
the same scoring. An alert must name the right series and kind, or the test fails."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest

from tests.bench.detection import ScenarioResult, in_child, play, warm
from tests.bench.detection_cores import CorePipeline
from tests.bench.detection_scenarios import SCENARIOS, Simulated, Traffic, simulate

SHORT = {
    "friction spike": "friction app:product",
    "source stops": "volume app:mobile-app",
}


@pytest.fixture(scope="module")
def results() -> dict[str, ScenarioResult]:
    scenarios = [replace(s, scored_days=0.75) for s in SCENARIOS if s.name.startswith(tuple(SHORT))]
    sim: Simulated = simulate(Traffic(warmup_days=1.0, scored_days=0.75))
    pipeline = CorePipeline()
    warm(sim, pipeline)
    return {s.name: in_child(partial(play, pipeline, sim, s)) for s in scenarios}


@pytest.mark.parametrize("start", sorted(SHORT))
def test_the_incident_is_found_by_an_alert_on_its_series(
    results: dict[str, ScenarioResult], start: str
) -> None:
    (result,) = [r for name, r in results.items() if name.startswith(start)]
    found = result.outcome.detected
    assert found is not None, f"{result.scenario}: no alert named {SHORT[start]}"
    assert any(f"{kind} {scope}" == SHORT[start] for _k, kind, scope in found.series)
    assert result.outcome.delay is not None and result.outcome.delay.total_seconds() > 0
