"""Prometheus metrics every stage reports, labelled by stage (served by each worker on its
metrics port); each stage package adds its own in its `metrics.py`."""

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


ALERTS_FIRED = Counter(
    "journeys_alerts_fired_total", "Alerts opened or firing again", ["kind", "severity"]
)
