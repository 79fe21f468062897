"""What goes out for a paging version: PagerDuty Events v2 bodies (trigger and resolve, in the
shape PagerDuty documents), the teams and links every body carries, and silences (a silenced
team is left out, an expired silence no longer holds)."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from schemas.alerting import WebhookTarget, parse_alert_routing
from schemas.config_files import ConfigFileError
from stream_processors.friction.alerts.core.addressing import address
from stream_processors.friction.alerts.core.bodies import Page, render
from stream_processors.friction.alerts.core.groups import AlertGroups
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.alerts.core.routing import AlertRouter
from stream_processors.friction.alerts.core.silences import (
    Silence,
    Silences,
    Target,
    target_of,
)
from stream_processors.friction.core.rules import Series
from tests.unit.friction.alerts.builders import CHECKOUT, closed, make_alert, tracker

WEB_WIDE = Series("friction", "web:*", "friction")
NOW = datetime(2025, 3, 3, 12, tzinfo=UTC)
ROUTING = """
version = 1
[default]
team = "oncall"
webhook = "http://oncall.test/hook"
[[route]]
name = "checkout-web"
team = "payments"
channel = "web"
touchpoint = "/checkout*"
pagerduty = "${PD_PAYMENTS}"
pagerduty_url = "http://pd.test/v2/enqueue"
webhook = "http://shared.test/hook"
runbook = "https://runbooks.test/checkout"
dashboard = "https://grafana.test/d/checkout"
[[route]]
name = "web"
team = "storefront"
channel = "web"
webhook = "http://shared.test/hook"
"""
PD_KEY = "a" * 32


def router() -> AlertRouter:
    doc = tomllib.loads(ROUTING)
    return AlertRouter(parse_alert_routing(doc, ROUTING, Path("r.toml"), {"PD_PAYMENTS": PD_KEY}))


def versions(steps: list[tuple[int, list[Series]]]) -> list[AlertRecord]:
    incidents, groups, out = tracker(), AlertGroups(router=router()), []
    for index, series in steps:
        records = incidents.process([make_alert(index, s) for s in series], closed(index))
        for group in groups.process(records, incidents.front_ms):
            published = groups.publish(group, group.record())
            if published is not None:
                out.append(published)
    return out


def paging() -> list[AlertRecord]:
    """Storefront's web-wide alert; payments' checkout takes the headline; it resolves."""
    steps = [(10, [WEB_WIDE]), (11, [WEB_WIDE, CHECKOUT])] + [(i, []) for i in range(12, 17)]
    return [r for r in versions(steps) if r.notify]


def body(
    delivery_format: str, record: AlertRecord, silences: Silences | None = None
) -> dict[str, Any]:
    found = address(record, router(), silences or Silences(), NOW).deliveries
    chosen = [d for d in found if d.target.format == delivery_format]
    assert len(chosen) == 1
    return dict(orjson.loads(render(chosen[0].target, record, chosen[0].page)))


def test_pagerduty_trigger_has_the_events_v2_shape() -> None:
    moved = paging()[1]
    event = body("pagerduty", moved)
    assert set(event) == {"routing_key", "event_action", "dedup_key", "payload", "links"}
    assert event["routing_key"] == PD_KEY and event["event_action"] == "trigger"
    assert event["dedup_key"] == moved.incident_id and len(event["dedup_key"]) <= 255
    payload = event["payload"]
    assert {"summary", "source", "severity"} <= set(payload)  # required by Events v2
    assert payload["severity"] in ("critical", "error", "warning", "info")
    assert 0 < len(payload["summary"]) <= 1024 and payload["source"]
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert isinstance(payload["custom_details"], dict)
    assert "headline moved" in payload["summary"]
    assert payload["custom_details"]["paged_before"] == ["storefront"]
    assert payload["custom_details"]["idempotency_key"] == f"{moved.incident_id}:{moved.version}"
    assert {link["href"] for link in event["links"]} == {
        "https://runbooks.test/checkout",
        "https://grafana.test/d/checkout",
    }


def test_pagerduty_resolve_names_the_trigger_it_resolves() -> None:
    _, moved, resolved = paging()
    event = body("pagerduty", resolved)
    assert event == {
        "routing_key": PD_KEY,
        "event_action": "resolve",
        "dedup_key": moved.incident_id,  # the same key as the trigger's
    }


def test_a_long_summary_is_cut_to_pagerduty_limit() -> None:
    moved = paging()[1]
    long = replace(moved, change="x" * 3000)
    assert len(body("pagerduty", long)["payload"]["summary"]) == 1024


def test_a_shared_endpoint_gets_one_request_naming_both_teams() -> None:
    resolved = paging()[-1]
    found = address(resolved, router(), Silences(), NOW).deliveries
    shared = [d for d in found if d.target.endpoint == "http://shared.test/hook"]
    assert len(shared) == 1
    assert set(shared[0].page.teams) == {"storefront", "payments"}
    json_body = orjson.loads(render(shared[0].target, resolved, shared[0].page))
    assert set(json_body["to"]) == {"storefront", "payments"}
    assert json_body["incident"]["paged_before"] == ["storefront", "payments"]


def test_slack_body_says_what_changed_and_links() -> None:
    moved = paging()[1]
    slack = WebhookTarget(format="slack", url=SecretStr("http://slack.test/hook"))
    page = Page(("payments",), (("Runbook", "https://runbooks.test/checkout"),))
    text = render(slack, moved, page).decode()
    assert "What changed:" in text and "paged before: storefront" in text
    assert "<https://runbooks.test/checkout|Runbook>" in text


def silence(target: Target, match: str, minutes: int = 60) -> Silence:
    start, end = NOW - timedelta(minutes=1), NOW + timedelta(minutes=minutes)
    return Silence("s1", target, match, start, end, "deploy")


@pytest.mark.parametrize(
    ("held", "paged"),
    [
        (None, {"payments"}),
        (("series", "friction web:/checkout *"), set()),
        (("route", "checkout-web"), set()),
        (("series", "friction web:/cart *"), {"payments"}),  # another series
    ],
)
def test_a_silenced_team_is_not_paged(held: tuple[Target, str] | None, paged: set[str]) -> None:
    opened = versions([(10, [CHECKOUT])])[0]
    silences = Silences()
    if held is not None:
        silences.apply(silence(*held))
    addressed = address(opened, router(), silences, NOW)
    assert {t for d in addressed.deliveries for t in d.page.teams} == paged
    assert [team for team, _ in addressed.silenced] == ([] if paged else ["payments"])


def test_a_silence_expires() -> None:
    opened = versions([(10, [CHECKOUT])])[0]
    silences = Silences()
    silences.apply(silence("route", "checkout-web", minutes=30))
    assert not address(opened, router(), silences, NOW).deliveries
    later = NOW + timedelta(minutes=31)
    assert address(opened, router(), silences, later).deliveries
    silences.forget_ended(later)
    assert len(silences) == 0


def test_a_silence_lifted_early_holds_no_more() -> None:
    opened = versions([(10, [CHECKOUT])])[0]
    silences = Silences()
    first = silence("route", "checkout-web")
    silences.apply(first)
    silences.apply(replace(first, ends_at=NOW, version=2))
    assert address(opened, router(), silences, NOW).deliveries


def test_silence_targets_are_series_or_routes() -> None:
    names = ["checkout-web", "web", "default"]
    assert target_of("friction web:/checkout *", names) == ("series", "friction web:/checkout *")
    assert target_of("checkout-web", names) == ("route", "checkout-web")
    with pytest.raises(ValueError, match="neither a series"):
        target_of("checkout", names)
    record = Silence.from_dict(orjson.loads(orjson.dumps(silence("route", "web").to_dict())))
    assert record == silence("route", "web")


def test_a_record_from_before_teams_goes_to_its_headlines_route() -> None:
    opened = versions([(10, [CHECKOUT])])[0]
    old = replace(opened, teams=(), page=(), paged_before=(), change=None)
    found = address(old, router(), Silences(), NOW).deliveries
    assert {d.target.format for d in found} == {"pagerduty", "json"}
    assert all(d.page.teams == ("payments",) for d in found)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('runbook = "wiki/checkout"', "runbook"),
        ('dashboard = "ftp://grafana.test/d"', "dashboard"),
        ('pagerduty = "${NOT_SET}"', "NOT_SET is not set"),
    ],
)
def test_route_links_and_keys_are_checked(line: str, problem: str) -> None:
    text = f'version = 1\n[default]\nteam = "oncall"\n{line}\n'
    with pytest.raises(ConfigFileError) as caught:
        parse_alert_routing(tomllib.loads(text), text, Path("r.toml"), {})
    assert any(problem in str(p) for p in caught.value.problems), caught.value.problems
