"""Scoring the detection bench from published alert rows: what finds an incident, what is a
consequence, what is false."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.bench.detection_cores import Published
from tests.bench.detection_scenarios import Expect, Incident, Scenario
from tests.bench.detection_scoring import VolumeTally, score

DAY = datetime(2025, 3, 11, tzinfo=UTC)
SCENARIO = Scenario(
    "stall",
    seed=1,
    incident=Incident(840, 60, lambda _rng, _b, _e, d: d),
    expect=Expect(("dropoff*",), ("purchase:checkout:*",)),
    consequences=("purchase:purchase:*",),
)


def row(alert: str, minute: int, scope: str, kind: str = "dropoff_spike", **more: Any) -> Published:
    series_kind = kind.split("_", maxsplit=1)[0]
    data = {
        "incident_id": alert,
        "status": "firing",
        "kind": kind,
        "series": {"kind": series_kind, "scope": scope, "name": "n"},
        "explanation": f"{alert} at {minute}",
        **more,
    }
    return Published(DAY + timedelta(minutes=minute), data)


def related(scope: str, kind: str = "dropoff_spike") -> dict[str, Any]:
    return {
        "kind": kind,
        "series": {"kind": kind.split("_", maxsplit=1)[0], "scope": scope, "name": "n"},
    }


def scored(published: list[Published]) -> Any:
    return score(SCENARIO, DAY, published, VolumeTally(DAY, DAY + timedelta(days=0.75)))


def test_the_first_alert_naming_the_series_after_the_start_finds_it() -> None:
    outcome = scored(
        [
            row("a", 800, "purchase:cart:web"),  # before the incident: false
            row("b", 850, "purchase:purchase:web", kind="entries_collapse"),  # a consequence
            row("c", 855, "purchase:checkout:web"),
        ]
    )
    assert outcome.detected.alert_id == "c" and outcome.delay == timedelta(minutes=15)
    assert [f.alert_id for f in outcome.false_alerts] == ["a"]
    assert [f.alert_id for f in outcome.symptoms] == ["b"]
    assert outcome.found == "yes: dropoff purchase:checkout:web dropoff_spike"


def test_a_series_joining_an_alert_already_firing_finds_it_but_one_it_held_before_does_not() -> (
    None
):
    quiet = "volume_collapse"
    joined = scored(
        [
            row("s", 10, "store:pos", kind=quiet),
            row("s", 860, "store:pos", kind=quiet, related=[related("purchase:checkout:web")]),
        ]
    )
    assert joined.detected is not None and joined.delay == timedelta(minutes=20)
    assert joined.found.endswith("(in the alert on volume store:pos)")
    held = scored(
        [
            row("s", 10, "store:pos", kind=quiet, related=[related("purchase:checkout:web")]),
            row("s", 860, "store:pos", kind=quiet, related=[related("purchase:checkout:web")]),
        ]
    )
    assert held.detected is None and held.found == "no"


def test_the_wrong_kind_or_a_late_alert_does_not_find_it() -> None:
    outcome = scored(
        [
            row("x", 850, "purchase:checkout:web", kind="entries_collapse"),
            row("y", 840 + 60 + 121, "purchase:checkout:web"),  # past found_by (2 h)
        ]
    )
    assert outcome.detected is None
    assert [f.alert_id for f in outcome.false_alerts] == ["x", "y"]
