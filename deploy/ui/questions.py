"""The SQL of the page's questions that `journeys query` does not ask (the funnel, paths and
person timeline come from `deploy.query.questions` as they are): drop-offs per time bucket,
and the alerts. Parameters are bound by ClickHouse, never pasted into the text."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from deploy.query.options import TimeRange
from deploy.query.questions import Query

# How many alerts the timeline shows at most (the newest): a page, not an export.
ALERTS_SHOWN = 500


def _within(column: str, span: TimeRange) -> tuple[list[str], dict[str, Any]]:
    conditions, parameters = [], {}
    for name, value, op in (("since", span.since, ">="), ("until", span.until, "<")):
        if value is not None:
            conditions.append(f"{column} {op} {{{name}:DateTime64(3, 'UTC')}}")
            parameters[name] = _sql_time(value)
    return conditions, parameters


def _sql_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def dropoff_trend(definition: str, span: TimeRange, bucket: timedelta) -> Query:
    """Standing drop-offs of one definition per stage and time bucket (its start), dropped in
    the range; from `dropoff_paths`, as `journeys query dropoffs` counts them."""
    conditions, parameters = _within("dropped_at", span)
    conditions.insert(0, "definition_id = {definition:String}")
    sql = f"""
SELECT toStartOfInterval(dropped_at, INTERVAL {{bucket_seconds:UInt32}} SECOND) AS bucket,
       stage, count() AS dropped
FROM dropoff_paths
{_where(conditions)}
GROUP BY bucket, stage
ORDER BY bucket, stage"""
    parameters |= {"definition": definition, "bucket_seconds": int(bucket.total_seconds())}
    return Query(sql, parameters)


def alerts(span: TimeRange) -> Query:
    """The latest version of every alert that started in the range, newest first."""
    conditions, parameters = _within("started_at", span)
    sql = f"""
SELECT incident_id, status, severity, kind, series_kind, series_name, place, team,
       started_at, last_window_end, resolved_at, windows, observed, expected, volume,
       explanation, cause
FROM alerts FINAL
{_where(conditions)}
ORDER BY started_at DESC, incident_id
LIMIT {{shown:UInt32}}"""
    return Query(sql, {**parameters, "shown": ALERTS_SHOWN})
