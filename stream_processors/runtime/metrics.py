"""Prometheus metrics of the stream processors (served by each worker on its metrics port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("journeys_stage_events_in_total", "Events read by a stage", ["stage"])
EVENTS_OUT = Counter("journeys_stage_events_out_total", "Events forwarded by a stage", ["stage"])
REJECTED = Counter(
    "journeys_stage_rejected_total", "Events dead-lettered by a stage", ["stage", "reason"]
)
DUPLICATES = Counter(
    "journeys_stage_duplicates_total", "Repeated event ids dropped by a stage", ["stage"]
)
REDELIVERED = Counter(
    "journeys_stage_redelivered_messages_total",
    "Messages skipped because their effect was already in the state",
    ["stage"],
)
STATE_KEYS = Gauge("journeys_stage_state_keys", "Keys held in a stage's state", ["stage"])
COMMIT_SECONDS = Histogram(
    "journeys_stage_commit_seconds", "Time to commit a stage's Kafka transaction", ["stage"]
)

IDENTITY_MERGES = Counter(
    "journeys_identity_merges_total", "Persons joined by the identity authority", ["rule"]
)
IDENTITY_MOVES = Counter(
    "journeys_identity_moves_total", "Identifiers moved between persons by a late link"
)
IDENTITY_REFUSALS = Counter(
    "journeys_identity_refusals_total", "Links or identifiers refused, by guard", ["rule"]
)
IDENTITY_IDENTIFIERS = Gauge(
    "journeys_identity_graph_identifiers", "Identifiers in the authority's graph"
)
IDENTITY_LINKS = Gauge("journeys_identity_graph_links", "Identifier pairs in the authority's graph")
IDENTITY_REMAPPED = Gauge(
    "journeys_identity_remapped_identifiers",
    "Identifiers whose person is not the one they name (the published map)",
)
REPLICA_LAG = Histogram(
    "journeys_identity_replica_lag_seconds",
    "Wall time from the authority publishing a map update to a routing worker applying it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
PROVISIONAL = Counter(
    "journeys_identity_link_events_total",
    "Events with several identifiers routed before the authority saw them (provisional person)",
)

JOURNEYS_OPEN = Gauge("journeys_open", "Journey instances open in this worker's partitions")
JOURNEY_WATERMARK = Gauge(
    "journeys_watermark_seconds", "Event-time watermark of the journeys stage (epoch seconds)"
)
JOURNEY_RECORDS = Counter(
    "journeys_records_total", "Drop-offs and retractions reported by the journeys stage", ["kind"]
)
JOURNEY_ANONYMOUS = Counter(
    "journeys_events_without_person_total", "Events with no usable identifier (no journey)"
)
JOURNEY_HANDOFFS = Counter(
    "journeys_person_handoffs_total",
    "Persons carried over after an identity merge (local: same partition)",
    ["direction"],
)
JOURNEY_FORWARDED = Counter(
    "journeys_events_forwarded_total", "Events stamped with a merged person id, sent on"
)
JOURNEY_MOVES_IGNORED = Counter(
    "journeys_identity_moves_ignored_total",
    "Identity moves (single identifiers changing person) the journeys stage does not replay",
)

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
ALERTS_FIRED = Counter(
    "journeys_alerts_fired_total", "Alerts opened or firing again", ["kind", "severity"]
)
ALERT_RECORDS = Counter(
    "journeys_alert_records_total", "Alert versions published to the alerts topic", ["status"]
)
ALERT_DELIVERIES = Counter(
    "journeys_alert_deliveries_total",
    "Webhook deliveries of alerts: delivered, retried (a retry scheduled) or failed "
    "(dead-lettered to dlq.alerts)",
    ["outcome"],
)
