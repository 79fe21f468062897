"""Where one alert version is posted, and with what (docs/concepts.md §6): pure, for the
webhook thread (`delivery.py`) and `journeys alerts test`.

A version that pages names its teams (`AlertRecord.page`, decided in `paging.py`). Each team
is reached through the routes of the alert's series it owns: their webhooks, Slack and
PagerDuty targets, each with the routes' runbook and dashboard links. An endpoint two teams
share gets one request naming both (a receiver deduplicating on the idempotency key would
drop the second). A team whose series are all silenced (`silences.py`) is left out, and said
so. A record written before teams were tracked (`page` empty) goes where it always went: the
route of its headline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from schemas.alerting import WebhookTarget
from stream_processors.friction.alerts.core.bodies import Page
from stream_processors.friction.alerts.core.paging import unique
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.alerts.core.routing import AlertRouter, Route
from stream_processors.friction.alerts.core.silences import Silence, Silences
from stream_processors.friction.core.rules import Series


@dataclass(frozen=True, slots=True)
class Delivery:
    target: WebhookTarget
    page: Page


@dataclass(slots=True)
class Addressed:
    """The requests to make, and the teams a silence held back (with the silence)."""

    deliveries: list[Delivery] = field(default_factory=list)
    silenced: list[tuple[str, Silence]] = field(default_factory=list)


def address(
    record: AlertRecord, router: AlertRouter, silences: Silences, now: datetime
) -> Addressed:
    """The pages of `record` at wall-clock time `now`; nothing when it does not page."""
    out = Addressed()
    if not record.notify:
        return out
    headline = router.route(record.series)
    teams = record.page or (headline.team,)
    by_target: dict[tuple[str, str, str], tuple[WebhookTarget, list[str], list[Route]]] = {}
    for team in teams:
        routes = _routes_of(record, router, team)
        held = _silenced(routes, silences, now)
        if held is not None:
            out.silenced.append((team, held))
            continue
        for route in unique_routes(r for _, r in routes):
            for target in route.targets:
                key = (target.format, target.endpoint, _key(target))
                _, named, via = by_target.setdefault(key, (target, [], []))
                named.append(team)
                via.append(route)
    for target, named, via in by_target.values():
        out.deliveries.append(Delivery(target, Page(unique(named), links(via))))
    return out


def links(routes: list[Route]) -> tuple[tuple[str, str], ...]:
    """The runbook and dashboard links of `routes`, each URL once."""
    found: dict[str, str] = {}
    for route in routes:
        if route.runbook:
            found.setdefault(route.runbook, f"Runbook ({route.team})")
        if route.dashboard:
            found.setdefault(route.dashboard, f"Dashboard ({route.team})")
    return tuple((text, url) for url, text in found.items())


def unique_routes(routes: Iterable[Route]) -> list[Route]:
    seen: dict[str, Route] = {}
    for route in routes:
        seen.setdefault(route.matched, route)
    return list(seen.values())


def _routes_of(record: AlertRecord, router: AlertRouter, team: str) -> list[tuple[Series, Route]]:
    """The alert's series `team` owns under the routing file now, with their routes; a team
    that owns none of them any more (the file changed) is reached by the default route."""
    everything = [record.series, *(r.series for r in record.related)]
    owned = [(s, router.route(s)) for s in everything]
    mine = [(s, route) for s, route in owned if route.team == team]
    return mine or [(record.series, router.default)]


def _silenced(
    routes: list[tuple[Series, Route]], silences: Silences, now: datetime
) -> Silence | None:
    """A silence, when every one of the series is silenced (by itself or by its route)."""
    held = [silences.covering(series, route.name, now) for series, route in routes]
    if all(h is not None for h in held):
        return held[0]
    return None


def _key(target: WebhookTarget) -> str:
    return target.routing_key.get_secret_value() if target.routing_key else ""
