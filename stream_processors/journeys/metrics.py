"""Prometheus metrics of the journeys stage (served by its worker on its metrics port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

JOURNEYS_OPEN = Gauge("journeys_open", "Journey instances open in this worker's partitions")
JOURNEYS_PERSONS = Gauge("journeys_persons", "Persons held in this worker's partitions")
JOURNEYS_FROZEN = Gauge(
    "journeys_persons_frozen",
    "Persons held as their snapshot: no open journey, session or buffered event",
)
JOURNEYS_BUFFERED = Gauge(
    "journeys_events_buffered",
    "Events held in this worker's partitions until the watermark passes them",
)
JOURNEYS_PARTITIONS_AWAITING = Gauge(
    "journeys_partitions_awaiting_handoffs",
    "This worker's partitions awaiting merged persons' state (time stops short of the merge)",
)
JOURNEYS_HANDOFFS_AWAITED = Gauge(
    "journeys_handoffs_awaited", "Merged persons' state this worker's partitions wait for"
)

JOURNEYS_PARTITIONS_PAUSED = Gauge(
    "journeys_partitions_paused",
    "This worker's partitions whose `stitched` reading is paused: input too far ahead of time",
)

JOURNEY_WATERMARK = Gauge(
    "journeys_watermark_seconds", "Event-time watermark of the journeys stage (epoch seconds)"
)

JOURNEY_RECORDS = Counter(
    "journeys_records_total",
    "Records the journeys stage wrote, by kind (journeys, dropoffs, retractions); superseded: "
    "journey versions not written because a later version of the same step replaced them",
    ["kind"],
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
