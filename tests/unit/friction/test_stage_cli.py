"""`journeys alerts list | show` (pure rendering), `journeys process friction`, and the
friction and alerts settings."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from deploy.cli import _parser
from deploy.commands.alerts import latest, render_list, render_show
from schemas.settings import SHIPPED_ALERT_ROUTING, SHIPPED_FRICTION_MAPPING, Settings
from stream_processors.friction.alerts.core.records import AlertRecord, Example
from stream_processors.friction.detection import detector_config
from tests.unit.friction.alerts.builders import CHECKOUT, at, closed, make_alert, tracker


def one_alert() -> list[AlertRecord]:
    from stream_processors.friction.alerts.core.groups import AlertGroups

    incidents, groups, out = tracker(), AlertGroups(), []
    for index in range(10, 16):
        alerts = [make_alert(index)] if index < 12 else []
        for group in groups.process(incidents.process(alerts, closed(index)), None):
            record = groups.publish(group, group.record())
            if record is not None:
                out.append(replace(record, team="payments", cause="error rose"))
    return out


def test_process_takes_the_friction_stage() -> None:
    args = _parser().parse_args(["process", "friction"])
    assert args.stage == "friction"


def test_list_shows_the_latest_version_of_each_alert() -> None:
    records = one_alert()
    found = latest(records)
    assert len(found) == 1 and next(iter(found.values())).status == "resolved"
    text = render_list(list(found.values()), None, 10)
    assert "resolved" in text and "payments" in text and str(CHECKOUT) in text
    assert "(no alerts)" in render_list(list(found.values()), "firing", 10)


def test_show_has_the_cause_the_examples_and_the_history() -> None:
    records = one_alert()
    last = replace(records[-1], examples=(Example("p-1", 0, "web", "/checkout", "error"),))
    text = render_show(last, records)
    assert "cause       error rose" in text
    assert "person p-1" in text
    assert "v1 firing (paged)" in text and f"v{last.version} resolved (paged)" in text
    assert at(10).strftime("%Y-%m-%d %H:%M") in text


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.friction.window == timedelta(minutes=5)
    assert defaults.friction.mapping == SHIPPED_FRICTION_MAPPING
    assert defaults.alerts.routing_file == SHIPPED_ALERT_ROUTING
    monkeypatch.setenv("JOURNEYS_FRICTION__WINDOW", "PT10M")
    monkeypatch.setenv("JOURNEYS_FRICTION__DETECTOR__ALPHA", "1e-7")
    monkeypatch.setenv("JOURNEYS_ALERTS__MAX_ATTEMPTS", "3")
    s = Settings()
    config = detector_config(s.friction)
    assert config.baseline.window == timedelta(minutes=10)
    assert config.alpha == 1e-7
    assert s.alerts.max_attempts == 3
    assert config.revisable_for >= s.friction.allowed_lateness
