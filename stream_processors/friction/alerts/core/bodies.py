"""The bodies a webhook receives for one incident record: pure, for `webhooks.py`.

- **Generic JSON**: `{"type": "journeys.incident", "v": 1, "idempotency_key": ...,
  "incident": {...}}`, the incident as `Incident.to_dict()` gives it (team and cause
  included when the caller filled them in).
- **Slack-compatible** (incoming webhooks, and the many tools that accept their format):
  `{"text": ..., "blocks": [...]}`; `text` is the fallback for notifications. Slack drops
  unknown top-level keys, so the idempotency key rides in the header and the last (context)
  block only.

The idempotency key is `<incident id>:<version>`: the same record sent twice (a retry after
a lost answer) carries the same key, and a new version of the incident a new one.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.alerting import WebhookTarget
from stream_processors.friction.alerts.core.causes import place
from stream_processors.friction.alerts.core.incident_records import Incident

IDEMPOTENCY_HEADER = "Idempotency-Key"
BODY_TYPE = "journeys.incident"
_ICONS = {
    "firing": ":rotating_light:",
    "resolved": ":white_check_mark:",
    "retracted": ":heavy_minus_sign:",
}
# Slack's limits: header text 150 characters, section text 3000, field text 2000.
_HEADER_MAX, _TEXT_MAX, _FIELD_MAX = 150, 3000, 2000


def idempotency_key(incident: Incident) -> str:
    return f"{incident.incident_id}:{incident.version}"


def json_body(incident: Incident) -> dict[str, Any]:
    return {
        "type": BODY_TYPE,
        "v": 1,
        "idempotency_key": idempotency_key(incident),
        "incident": incident.to_dict(),
    }


def slack_body(incident: Incident) -> dict[str, Any]:
    title = _title(incident)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_MAX)}},
        _section(_escape(incident.explanation)),
        {"type": "section", "fields": [_field(k, v) for k, v in _facts(incident)]},
    ]
    if incident.cause:
        blocks.append(_section(f"*Likely cause:* {_escape(incident.cause)}"))
    context = f"incident `{idempotency_key(incident)}` · {incident.last_alert_id} (last alert)"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    text = f"{_ICONS[incident.status]} {title}"
    if incident.team:
        text += f" (team {incident.team})"
    return {"text": _escape(text), "blocks": blocks}


def render(target: WebhookTarget, incident: Incident) -> bytes:
    """The request body for a target's format."""
    body = slack_body(incident) if target.format == "slack" else json_body(incident)
    return orjson.dumps(body)


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
    if incident.resolved_at is not None:
        facts.append(("Resolved", f"{incident.resolved_at:%Y-%m-%d %H:%M} UTC"))
    return facts


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _TEXT_MAX)}}


def _field(name: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _cut(f"*{name}*\n{_escape(value)}", _FIELD_MAX)}


def _escape(text: str) -> str:
    """Slack's mrkdwn reads `<...>` as links and mentions: these three must be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
