"""The simulator's silent incidents and traffic shape: `stall`, `lost` and `off`, the daily
cycle with its weekend, per-stage conversion and progress times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from producers.pii import PiiHasher
from producers.simulator.config import Incident, SimConfig
from producers.simulator.engine import SimEvent, Simulation
from producers.simulator.truth import GroundTruth
from schemas.settings import PiiSettings

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday


def run(**config: object) -> tuple[list[SimEvent], GroundTruth]:
    settings = {"customers": 1500, "days": 2.0, "start": START, "seed": 4, **config}
    return Simulation(SimConfig.model_validate(settings), PiiHasher(PiiSettings())).run()


def test_the_silent_kinds_parse() -> None:
    stall = Incident.parse("web:/checkout/done stall x20 @60m for 60m")
    assert (stall.kind, stall.factor, stall.start_minute) == ("stall", 20.0, 60)
    off = Incident.parse("app:* off @30m for 180m")
    assert (off.channel, off.touchpoint, off.kind, off.duration_minutes) == ("app", "*", "off", 180)
    assert Incident.parse("app:* lost x10 @0m for 5m").kind == "lost"


def test_off_sends_nothing_of_the_channel_and_lost_one_in_the_factor() -> None:
    window = "@1440m for 720m"
    begin, end = START + timedelta(days=1), START + timedelta(days=1, hours=12)

    def app_events(events: list[SimEvent]) -> int:
        return sum(
            1 for e in events if e.event["channel"] == "app" and begin <= e.occurred_at < end
        )

    normal = app_events(run()[0])
    off = app_events(run(incidents=(Incident.parse(f"app:* off {window}"),))[0])
    lost = app_events(run(incidents=(Incident.parse(f"app:* lost x10 {window}"),))[0])
    assert normal > 100
    assert off == 0
    assert 0 < lost < normal / 4


def test_a_stall_makes_journeys_at_the_stage_drop_off_with_no_error_event() -> None:
    incident = Incident.parse("web:/checkout/done stall x20 @1440m for 720m")
    events, truth = run(customers=3000, incidents=(incident,), stage_conversion={"checkout": 0.7})
    begin, end = START + timedelta(days=1), START + timedelta(days=1, hours=12)
    at_checkout = [
        j
        for j in truth.journeys
        if any(
            s.stage == "checkout" and s.channel == "web" and begin <= s.at < end for s in j.stages
        )
        and j.stages[0].channel == "web"
    ]
    dropped = sum(1 for j in at_checkout if j.dropped_stage == "checkout")
    assert len(at_checkout) > 30 and dropped / len(at_checkout) >= 0.85
    friction = [
        e for e in events if begin <= e.occurred_at < end and "error" in e.event["properties"]
    ]
    normal_friction = [
        e
        for e in run(customers=3000, stage_conversion={"checkout": 0.7})[0]
        if begin <= e.occurred_at < end and "error" in e.event["properties"]
    ]
    assert len(friction) <= len(normal_friction)  # no error event comes with it


def test_the_daily_cycle_and_the_weekend_shape_journey_starts() -> None:
    _events, truth = run(customers=3000, days=7.0, daily_cycle=5.0, weekend_share=0.5)
    starts = [j.stages[0].at for j in truth.journeys]
    afternoon = sum(1 for t in starts if 14 <= t.hour < 18 and t.weekday() < 5)
    night = sum(1 for t in starts if 2 <= t.hour < 6 and t.weekday() < 5)
    weekday = sum(1 for t in starts if t.weekday() < 5) / 5
    weekend = sum(1 for t in starts if t.weekday() >= 5) / 2
    assert afternoon > 3 * night
    assert 0.35 < weekend / weekday < 0.65


def test_quick_progress_moves_on_within_minutes() -> None:
    _events, truth = run(progress_times="quick")
    gaps = [
        (b.at - a.at) / timedelta(minutes=1)
        for j in truth.journeys
        for a, b in zip(j.stages, j.stages[1:], strict=False)
        if (a.stage, b.stage) == ("checkout", "purchase")
    ]
    gaps.sort()
    assert gaps and 2 <= gaps[len(gaps) // 2] <= 8


def test_a_stage_conversion_is_a_probability() -> None:
    with pytest.raises(ValidationError, match="stage_conversion"):
        SimConfig(stage_conversion={"checkout": 1.5})
