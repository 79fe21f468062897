"""The demo's alert lines: each alert once, as it first fired, with its delay from the
incident running then (event time), or said to be false or after the traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from deploy.demo import render_alerts
from producers.simulator.config import Incident, SimConfig
from producers.simulator.truth import GroundTruth
from stream_processors.friction.alerts.core.records import AlertRecord

START = datetime(2025, 3, 3, tzinfo=UTC)


def record(alert: str, status: str, version: int, decided_minute: int, **more: Any) -> AlertRecord:
    end = START + timedelta(minutes=decided_minute)
    return AlertRecord.from_dict(
        {
            "incident_id": alert,
            "version": version,
            "status": status,
            "series": {"kind": "friction", "scope": "web:/checkout", "name": "friction"},
            "kind": "friction_spike",
            "started_at": (end - timedelta(minutes=10)).isoformat(),
            "last_window_start": (end - timedelta(minutes=5)).isoformat(),
            "last_window_end": end.isoformat(),
            "windows": 2,
            "observed": 9,
            "expected": 1.5,
            "volume": 40,
            "p_value": 1e-7,
            "severity": "warning",
            "explanation": f"explained {alert} v{version}",
            "last_alert_id": "a",
            "team": "payments",
            "cause": "errors at web:/checkout",
            **more,
        }
    )


def truth() -> GroundTruth:
    incident = Incident.parse("web:/checkout errors x8 @600m for 60m")
    config = SimConfig(customers=1, days=1.0, start=START, incidents=(incident,))
    return GroundTruth.build(config, [], [], [])


def test_each_alert_once_with_its_delay_from_the_incident_running() -> None:
    records = [
        record("a1", "firing", 1, 615),
        record("a1", "firing", 2, 640),  # an update: the first firing version counts
        record("a1", "resolved", 3, 700),
        record("a2", "firing", 1, 300),  # no incident then
        record("a3", "firing", 1, 1500),  # after the simulated day
    ]
    text = render_alerts(records, truth())
    assert "Alerts raised: 3" in text
    assert text.count("explained a1") == 1 and "explained a1 v1" in text
    assert "fired 15 min (event time) after web:/checkout errors began" in text
    assert "no incident was running: a false alert" in text
    assert "after the simulated traffic ended" in text
    assert "likely cause: errors at web:/checkout" in text and "team payments" in text
