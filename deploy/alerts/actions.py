"""`journeys alerts silence` and `journeys alerts test`: the two commands that act on pages.

A silence is written to the compacted `alert-silences` topic (the webhook thread follows it,
the sink stores it in `alert_silences`). Durations use the one syntax of every Journeys
duration (`schemas.definitions.parse_duration`: 30m, 2h, 1h30m, 1d). A test page is a
sample firing alert posted to each target of one route by the `WebhookSender` the stage uses
(its body renderers, headers, retries and backoff), with the route's links, and a PagerDuty
target gets its resolve right after (a test leaves no incident open); what each target
answered is printed, and nothing is written to Kafka or ClickHouse.
"""

from __future__ import annotations

import argparse
import getpass
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from deploy.query.answers import Answer
from deploy.query.formats import render
from schemas.alerting import load_alert_routing
from schemas.definitions import parse_duration
from schemas.settings import Settings
from stream_processors.friction.alerts.core.addressing import links
from stream_processors.friction.alerts.core.bodies import Page
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.alerts.core.retry import RetryPolicy
from stream_processors.friction.alerts.core.routing import AlertRouter
from stream_processors.friction.alerts.core.silences import Silence, target_of
from stream_processors.friction.alerts.webhooks import FailedDelivery, WebhookSender
from stream_processors.friction.core.rules import Series


def _router(settings: Settings) -> AlertRouter | None:
    path = settings.alerts.routing_file
    return AlertRouter(load_alert_routing(path)) if path is not None else None


def run_silence(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import check_kafka
    from stream_processors.friction.alerts.silence_log import write_silence

    router = _router(settings)
    names = [name for r in router.routes() for name in (r.name, r.matched)] if router else []
    try:
        duration = parse_duration(args.duration)
        target, match = target_of(args.target, dict.fromkeys(names))
    except ValueError as exc:
        print(f"alerts silence: {exc}")
        return 2
    if not args.reason.strip():
        print("alerts silence: --reason: say why (it is shown wherever the silence is listed)")
        return 2
    named = router.named(match) if router is not None and target == "route" else None
    match = named.name if named is not None else match  # `route[2] checkout` -> `checkout`
    now = datetime.now(UTC)
    silence = Silence(
        str(uuid.uuid4()), target, match, now, now + duration, args.reason.strip(), _user()
    )
    check_kafka(settings)
    write_silence(settings, silence)
    print(f"silenced {silence.describe()} (id {silence.silence_id})")
    return 0


def run_silences(settings: Settings, args: argparse.Namespace) -> int:
    """List silences from ClickHouse, or lift one (`--lift ID`: written again, ending now)."""
    from deploy.alerts.reader import read_silences

    now = datetime.now(UTC)
    held = read_silences(settings)
    if args.lift is None:
        shown = [s for s in held if args.all or s.active(now)]
        print(render(silences_answer(shown), args.format))
        return 0
    matches = [s for s in held if s.silence_id.startswith(args.lift)]
    if len(matches) != 1:
        print(f"alerts silences --lift: {len(matches) or 'no'} silences with id {args.lift!r}")
        return 2
    from deploy.kafka_admin import check_kafka
    from stream_processors.friction.alerts.silence_log import write_silence

    check_kafka(settings)
    lifted = matches[0].lifted(now)
    write_silence(settings, lifted)
    print(f"lifted {lifted.describe()} (id {lifted.silence_id})")
    return 0


def silences_answer(silences: list[Silence]) -> Answer:
    """The rows of `alerts silences`. Pure."""
    columns = ["silence_id", "target", "match", "starts_at", "ends_at", "reason", "created_by"]
    rows = [
        (s.silence_id, s.target, s.match, s.starts_at, s.ends_at, s.reason, s.created_by)
        for s in silences
    ]
    return Answer(columns, rows)


def run_test(settings: Settings, args: argparse.Namespace) -> int:
    router = _router(settings)
    if router is None:
        print("alerts test: no routing file (set JOURNEYS_ALERTS__ROUTING_FILE)")
        return 2
    route = router.named(args.route)
    if route is None:
        known = ", ".join(r.name for r in router.routes())
        print(f"alerts test: no route {args.route!r} in the routing file ({known})")
        return 2
    if not route.targets:
        print(f"alerts test: route {route.name} has no webhook, slack or pagerduty target")
        return 1
    failed: list[FailedDelivery] = []
    sender = WebhookSender(RetryPolicy.of(settings.alerts), failed.append)
    record = sample(route.team, route.matched, datetime.now(UTC))
    page = Page((route.team,), links([route]))
    resolved = replace(record, version=2, status="resolved", resolved_at=record.last_window_end)
    for target in route.targets:
        sender.submit(target, record, page)
        if target.format == "pagerduty":  # the lane keeps order: the trigger, then its resolve
            sender.submit(target, resolved, page)
    sender.close(settings.alerts.max_elapsed_seconds + settings.alerts.timeout_seconds)
    for target in route.targets:
        problem = next((f for f in failed if f.endpoint == target.redacted), None)
        said = f"failed: {problem.reason}" if problem else "delivered"
        print(f"{target.format:<9} {target.redacted}  {said}")
    return 1 if failed else 0


def sample(team: str, route: str, now: datetime) -> AlertRecord:
    """A firing alert that says it is a test. Pure."""
    return AlertRecord(
        incident_id=f"test-{uuid.uuid4()}",
        version=1,
        status="firing",
        series=Series("friction", "test:/journeys-alerts-test", "test"),
        kind="friction_spike",
        started_at=now,
        last_window_start=now,
        last_window_end=now,
        windows=1,
        observed=0,
        expected=None,
        volume=0,
        p_value=None,
        severity="warning",
        explanation=f"A test page from `journeys alerts test` for {route}: no action needed.",
        last_alert_id="test",
        team=team,
        route=route,
        notify=True,
        teams=(team,),
        page=(team,),
        change="a test page",
    )


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
