"""Prometheus metrics of the friction and alerts stage (served by its worker)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FRICTION_WINDOWS_CLOSED = Counter(
    "journeys_friction_windows_closed_total",
    "Event-time windows closed: per partition (level=partition, each window start once per "
    "partition) and summed over all partitions (level=global)",
    ["level"],
)

FRICTION_WINDOWS_REEMITTED = Counter(
    "journeys_friction_windows_reemitted_total",
    "Closed windows sent again as a new version because late events changed them",
    ["level"],
)

FRICTION_LATE_DROPPED = Counter(
    "journeys_friction_late_dropped_total",
    "Events and partial windows older than the windows' allowed lateness (not counted)",
    ["level"],
)

FRICTION_WATERMARK = Gauge(
    "journeys_friction_watermark_seconds",
    "Event time up to which every partition's windows are closed (epoch seconds)",
)

FRICTION_SERIES = Gauge("journeys_friction_series", "Series the friction detector keeps")

ALERT_INCIDENTS = Counter(
    "journeys_alert_incidents_total", "Per-series incidents opened by the detector", ["kind"]
)

ALERT_RECORDS = Counter(
    "journeys_alert_records_total", "Alert versions published to the alerts topic", ["status"]
)

ALERT_DELIVERIES = Counter(
    "journeys_alert_deliveries_total",
    "Webhook deliveries of alerts: delivered, retried (a retry scheduled), failed "
    "(dead-lettered to dlq.alerts) or silenced (a team's page held back by a silence)",
    ["outcome"],
)
