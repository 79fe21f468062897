"""Alerts from ClickHouse's `alerts` table for `journeys alerts list|show`, through
`sinks.clickhouse.reading()` like every other reader: no broker needed, and what the sink
stored outlives the topic's retention.

The latest version of each alert is read with FINAL; a table made by an older version that
lacks a column this one reads is a one-line error asking for `journeys db migrate`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from schemas.settings import Settings
from sinks.clickhouse import reading
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.alerts.core.silences import Silence

COLUMNS = (
    "incident_id, version, status, kind, series_kind, scope, series_name, started_at, "
    "last_window_start, last_window_end, resolved_at, windows, observed, expected, volume, "
    "p_value, severity, explanation, team, route, cause, related_series, related_ids, "
    "examples, last_alert_id, notify, teams, page, paged_before, change, related"
)
NEWER = ("teams", "page", "paged_before", "change", "related")
LATE = ("late", "found_late_by")  # read when the table has them (`journeys db migrate` adds)


class AlertsReadError(Exception):
    """ClickHouse holds no alerts table this version can read."""


def read_clickhouse(settings: Settings) -> list[AlertRecord]:
    """The latest version of every alert ClickHouse holds."""
    with reading(settings.clickhouse_dsn) as client:
        return query_alerts(client)


def query_alerts(client: Client) -> list[AlertRecord]:
    have = {
        name
        for (name,) in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = 'alerts'"
        ).result_rows
    }
    if not have:
        raise AlertsReadError("ClickHouse holds no alerts table: run `journeys db migrate`")
    missing = [c for c in NEWER if c not in have]
    if missing:
        raise AlertsReadError(
            f"the alerts table lacks {', '.join(missing)} (an older schema): run "
            "`journeys db migrate`"
        )
    late = "".join(f", {c}" for c in LATE if c in have)
    result = client.query(f"SELECT {COLUMNS}{late} FROM alerts FINAL")
    names = result.column_names
    return [record_of(dict(zip(names, row, strict=True))) for row in result.result_rows]


def record_of(row: dict[str, Any]) -> AlertRecord:
    """One `alerts` row as the record the stage published. Pure."""
    data = {k: v for k, v in row.items() if k not in ("series_kind", "scope", "series_name")}
    data["series"] = {"kind": row["series_kind"], "scope": row["scope"], "name": row["series_name"]}
    for name in ("started_at", "last_window_start", "last_window_end", "resolved_at"):
        data[name] = _iso(row[name])
    data["examples"] = [_named(e, EXAMPLE) for e in row["examples"]]
    data["related"] = [_related(r) for r in row["related"]]
    return AlertRecord.from_dict(data)


EXAMPLE = ("person_id", "at", "channel", "touchpoint", "what", "journey_id")
RELATED = ("incident_id", "series", "kind", "status", "started_at", "observed", "expected", "team")


def _related(value: Any) -> dict[str, Any]:
    related = _named(value, RELATED)
    related["series"] = _named(related["series"], ("kind", "scope", "name"))
    return related


def _named(value: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A named tuple as ClickHouse's client returns it (a dict or a plain tuple)."""
    if isinstance(value, dict):
        return dict(value)
    return dict(zip(names, value, strict=True))


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


def read_silences(settings: Settings) -> list[Silence]:
    """The latest version of every silence ClickHouse holds, the latest ending first."""
    with reading(settings.clickhouse_dsn) as client:
        result = client.query(
            "SELECT silence_id, version, target, match, starts_at, ends_at, reason, created_by "
            "FROM alert_silences FINAL ORDER BY ends_at DESC, silence_id"
        )
        names = result.column_names
        return [Silence.from_dict(dict(zip(names, row, strict=True))) for row in result.result_rows]
