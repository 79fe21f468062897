"""The bodies a webhook receives for one incident record: pure, for `webhooks.py`.

- **Generic JSON**: `{"type": "journeys.incident", "v": 1, "idempotency_key": ...,
  "incident": {...}}`, the incident as `Incident.to_dict()` gives it (team and cause
  included when the caller filled them in).
- **Slack-compatible** (incoming webhooks, and the many tools that accept their format):
  `{"text": ..., "blocks": [...]}`; `text` is the fallback for notifications. Slack drops
  unknown top-level keys, so the idempotency key rides in the header and the last (context)
  block only.
- **PagerDuty Events v2** (`https://events.pagerduty.com/v2/enqueue`): `routing_key` (the
  route's integration key), `event_action` (`trigger` while firing, `resolve` once resolved
  or withdrawn), `dedup_key`, and for a trigger `payload` (`summary` of at most 1024
  characters, `source`, `severity`, `timestamp`, `component`, `group`, `class`,
  `custom_details`) and `links`. The dedup key is the alert's id, the part of the
  idempotency key every version shares: PagerDuty correlates a resolve with its trigger by
  it, and a trigger repeated (a retry, or the page to a team that just came to own the
  alert) joins the open PagerDuty alert instead of opening another; the full idempotency key
  is in `custom_details`.

Every body says who it is addressed to (the teams paged), what changed (opened, resolved, the
headline moved to another team's series, ...), who was paged before, and the route's runbook
and dashboard links (`Page`).

The idempotency key is `<incident id>:<version>`: the same record sent twice (a retry after
a lost answer) carries the same key, and a new version of the incident a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas.alerting import WebhookTarget
from stream_processors.friction.alerts.core.causes import place
from stream_processors.friction.alerts.core.incident_records import Incident
from stream_processors.friction.alerts.core.records import AlertRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"
BODY_TYPE = "journeys.incident"
_ICONS = {
    "firing": ":rotating_light:",
    "resolved": ":white_check_mark:",
    "retracted": ":heavy_minus_sign:",
}
# Slack's limits: header text 150 characters, section text 3000, field text 2000.
_HEADER_MAX, _TEXT_MAX, _FIELD_MAX = 150, 3000, 2000
# PagerDuty's: summary 1024 characters, dedup key 255.
_SUMMARY_MAX, _DEDUP_MAX = 1024, 255
PAGERDUTY_SOURCE = "journeys"


@dataclass(frozen=True, slots=True)
class Page:
    """What one endpoint is told besides the record: the teams it is addressed to, and the
    links (text, URL) of their routes (runbook, dashboard)."""

    teams: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()


def idempotency_key(incident: Incident) -> str:
    return f"{incident.incident_id}:{incident.version}"


def json_body(incident: Incident, page: Page | None = None) -> dict[str, Any]:
    page = page or Page()
    return {
        "type": BODY_TYPE,
        "v": 1,
        "idempotency_key": idempotency_key(incident),
        "to": list(page.teams),
        "links": [{"text": text, "href": href} for text, href in page.links],
        "incident": incident.to_dict(),
    }


def slack_body(incident: Incident, page: Page | None = None) -> dict[str, Any]:
    page = page or Page()
    title = _title(incident)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_MAX)}},
        _section(_escape(incident.explanation)),
        {"type": "section", "fields": [_field(k, v) for k, v in _facts(incident)]},
    ]
    change = _change(incident)
    if change:
        blocks.append(_section(f"*What changed:* {_escape(change)}"))
    if incident.cause:
        blocks.append(_section(f"*Likely cause:* {_escape(incident.cause)}"))
    if page.links:
        links = " · ".join(f"<{href}|{_escape(text)}>" for text, href in page.links)
        blocks.append(_section(links))
    context = f"incident `{idempotency_key(incident)}` · {incident.last_alert_id} (last alert)"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    text = f"{_ICONS[incident.status]} {title}"
    teams = page.teams or ((incident.team,) if incident.team else ())
    if teams:
        text += f" (team {', '.join(teams)})"
    return {"text": _escape(text), "blocks": blocks}


def pagerduty_body(
    incident: Incident, routing_key: str, page: Page | None = None
) -> dict[str, Any]:
    """An Events v2 event: a trigger while firing, a resolve once resolved or withdrawn."""
    page = page or Page()
    dedup_key = incident.incident_id[:_DEDUP_MAX]
    if incident.status != "firing":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    summary = _title(incident)
    change = _change(incident)
    if change:
        summary += f": {change}"
    details: dict[str, Any] = {
        "explanation": incident.explanation,
        "series": str(incident.series),
        "observed": incident.observed,
        "expected": incident.expected,
        "volume": incident.volume,
        "started_at": incident.started_at.isoformat(),
        "late": incident.late,
        "found_late_by": incident.found_late_by,
        "cause": incident.cause,
        "teams_paged": list(page.teams),
        "idempotency_key": idempotency_key(incident),
    }
    details.update(_paging(incident))
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": _cut(summary, _SUMMARY_MAX),
            "source": f"{PAGERDUTY_SOURCE} {place(incident.series)}",
            "severity": incident.severity,  # warning or critical: both PagerDuty's words
            "timestamp": incident.last_window_end.isoformat(),
            "component": incident.series.scope,
            "group": (page.teams or (incident.team or "unrouted",))[0],
            "class": incident.kind,
            "custom_details": details,
        },
        "links": [{"href": href, "text": text} for text, href in page.links],
    }


def render(target: WebhookTarget, incident: Incident, page: Page | None = None) -> bytes:
    """The request body for a target's format."""
    if target.format == "slack":
        return orjson.dumps(slack_body(incident, page))
    if target.format == "pagerduty":
        key = target.routing_key.get_secret_value() if target.routing_key else ""
        return orjson.dumps(pagerduty_body(incident, key, page))
    return orjson.dumps(json_body(incident, page))


def _paging(incident: Incident) -> dict[str, Any]:
    """What an alert record says about its paging (a bare incident says nothing)."""
    if not isinstance(incident, AlertRecord):
        return {}
    return {
        "change": incident.change,
        "paged_before": list(incident.paged_before),
        "teams": list(incident.teams),
    }


def _change(incident: Incident) -> str | None:
    """What changed, when it says more than the status does, with who was paged before."""
    if not isinstance(incident, AlertRecord):
        return None
    change = incident.change
    if not change or change in ("opened", "resolved", "retracted", "firing again"):
        return None
    before = incident.paged_before
    return change + (f" (paged before: {', '.join(before)})" if before else "")


def _title(incident: Incident) -> str:
    kind = incident.kind.replace("_", " ")
    what = f"{incident.series.name} " if incident.series.kind == "friction" else ""
    return (
        f"[{incident.status.upper()}] {incident.severity} {kind}: {what}at {place(incident.series)}"
    )


def _facts(incident: Incident) -> list[tuple[str, str]]:
    expected = "no baseline yet" if incident.expected is None else f"{incident.expected:.1f}"
    facts = [
        ("Series", f"`{incident.series}`"),
        ("Team", incident.team or "unrouted"),
        ("Observed", f"{incident.observed} (volume {incident.volume})"),
        ("Expected", expected),
        ("Since", f"{incident.started_at:%Y-%m-%d %H:%M} UTC"),
        ("Windows alerting", str(incident.windows)),
    ]
    if incident.late:
        facts.append(("Found late", f"{_duration(incident.found_late_by)} after its first window"))
    if incident.resolved_at is not None:
        facts.append(("Resolved", f"{incident.resolved_at:%Y-%m-%d %H:%M} UTC"))
    return facts


def _duration(seconds: int) -> str:
    """`3 h 55 min`, `12 min`, `40 s`: how late an alert was found."""
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else f"{seconds} s"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _TEXT_MAX)}}


def _field(name: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _cut(f"*{name}*\n{_escape(value)}", _FIELD_MAX)}


def _escape(text: str) -> str:
    """Slack's mrkdwn reads `<...>` as links and mentions: these three must be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
