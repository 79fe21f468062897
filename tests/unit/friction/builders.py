"""Simulated traffic through the friction core (signals -> windows -> detector), shared by
the simulation test and the friction bench.

Touchpoints arrive a little out of order (up to `jitter` after their event time); stage
entries, progressions and drop-offs come from the simulator's ground truth, standing in for
what the journeys stage reports. The watermark is the newest event time seen minus the
pipeline's lateness, advanced every `batch` arrivals as a stage does per Kafka message.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from producers.pii import PiiHasher
from producers.simulator.config import SimConfig
from producers.simulator.engine import SimEvent, Simulation
from producers.simulator.truth import GroundTruth, TruthJourney
from schemas.friction import FrictionMapping, load_friction_mapping
from schemas.settings import PiiSettings
from stream_processors.core.friction_signals import FrictionMatcher, RepeatContacts
from stream_processors.friction.core.detector import Detector, DetectorConfig
from stream_processors.friction.core.rules import Alert
from stream_processors.friction.core.series import (
    DROPPED,
    ENTERED,
    PROGRESSED,
    FrictionSeries,
    count_stage,
)
from stream_processors.friction.core.windows import TumblingWindows

ROOT = Path(__file__).resolve().parents[3]
DEFAULTS = ROOT / "deploy" / "friction" / "defaults.toml"
DAY_MS = 86_400_000
START = datetime(2025, 3, 1, tzinfo=UTC)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def simulate(config: SimConfig) -> tuple[list[SimEvent], GroundTruth]:
    return Simulation(config, PiiHasher(PiiSettings())).run()


@dataclass(frozen=True, slots=True)
class StageEvent:
    """What the journeys stage would report: a journey entered, left or dropped a stage."""

    journey: str
    stage: str
    channel: str
    what: str
    at_ms: int


Arrival = tuple[int, int, dict[str, Any] | StageEvent]  # (arrival ms, tie-break, payload)


def arrivals(
    events: list[SimEvent], truth: GroundTruth, *, seed: int = 1, jitter: timedelta
) -> list[Arrival]:
    """Touchpoints and stage events in the order a stage would receive them."""
    rng = random.Random(seed)
    most = jitter.total_seconds() * 1000
    out: list[Arrival] = [
        (ms(e.occurred_at) + int(rng.uniform(0, most)), n, e.event) for n, e in enumerate(events)
    ]
    stage_events = [s for journey in truth.journeys for s in _stage_events(journey)]
    out += [(s.at_ms, len(events) + n, s) for n, s in enumerate(stage_events)]
    out.sort(key=lambda a: (a[0], a[1]))
    return out


def _stage_events(truth: TruthJourney) -> Iterable[StageEvent]:
    name, stages = truth.definition, truth.stages
    for i, stage in enumerate(stages):
        yield StageEvent(name, stage.stage, stage.channel, ENTERED, ms(stage.at))
        if i + 1 < len(stages):
            yield StageEvent(name, stage.stage, stage.channel, PROGRESSED, ms(stages[i + 1].at))
    if truth.outcome == "dropped_off" and truth.dropped_at is not None:
        last = stages[-1]
        yield StageEvent(name, last.stage, last.channel, DROPPED, ms(truth.dropped_at))


@dataclass
class Pipeline:
    """The pure friction core wired as a stage would wire it."""

    mapping: FrictionMapping = field(default_factory=lambda: load_friction_mapping(DEFAULTS))
    detector_config: DetectorConfig = field(default_factory=DetectorConfig)
    window: timedelta = timedelta(minutes=5)
    allowed_lateness: timedelta = timedelta(minutes=30)  # closed windows take late events
    lateness: timedelta = timedelta(minutes=2)  # the watermark trails the newest event time
    batch: int = 200
    alerts: list[Alert] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.windows = TumblingWindows(self.window, self.allowed_lateness)
        self.repeats = RepeatContacts(7 * DAY_MS)
        self.series = FrictionSeries(FrictionMatcher(self.mapping), self.windows, self.repeats)
        self.detector = Detector(self.detector_config)
        self.newest: int | None = None

    def run(self, items: list[Arrival], until_ms: int | None = None) -> list[Alert]:
        """Feed arrivals (stopping at `until_ms`, by event time); return every alert."""
        lag = int(self.lateness.total_seconds() * 1000)
        for n, (_, _, payload) in enumerate(items, start=1):
            if isinstance(payload, StageEvent):
                at = payload.at_ms
                if until_ms is not None and at >= until_ms:
                    continue
                count_stage(
                    self.windows,
                    payload.journey,
                    payload.stage,
                    payload.channel,
                    what=payload.what,
                    at_ms=at,
                )
            else:
                at = self.series.clock.ms(payload)
                if until_ms is not None and at >= until_ms:
                    continue
                self.series.count(payload)
            self.newest = at if self.newest is None else max(self.newest, at)
            if n % self.batch == 0:
                self.alerts += self.detector.process(self.series.advance(self.newest - lag))
        if self.newest is not None:
            self.alerts += self.detector.process(self.series.advance(self.newest - lag))
        return self.alerts


def window_start(when: datetime | int, size: timedelta = timedelta(minutes=5)) -> int:
    at = when if isinstance(when, int) else ms(when)
    step = int(size.total_seconds() * 1000)
    return at - at % step


def decided_at(alert: Alert) -> int:
    """The start of the window whose close decided an alert (the last of its windows)."""
    size = (alert.window_end - alert.window_start) / alert.windows
    return ms(alert.window_end - size)
