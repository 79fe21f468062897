"""Topic names and what each one carries. ARCHITECTURE.md has the full table."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.history import HISTORY_PREFIX
from schemas.settings import TopicSettings

RAW = "raw"
TOUCHPOINTS = "touchpoints"
DLQ_INGEST = "dlq.ingest"
STITCHED = "stitched"
IDENTITY_LINKS = "identity-links"
IDENTITY_MAP = "identity-map"
IDENTITY_AUDIT = "identity-audit"
IDENTITY_MERGES = "identity-merges"
JOURNEY_UPDATES = "journey-updates"
JOURNEY_TRANSITIONS = "journey-transitions"
JOURNEY_DROPOFFS = "journey-dropoffs"
JOURNEY_RETRACTIONS = "journey-retractions"
JOURNEY_SESSIONS = "journey-sessions"
JOURNEY_HANDOFF = "journey-handoff"
FRICTION_PARTIALS = "friction-partials"
FRICTION_WINDOWS = "friction-windows"
ALERTS = "alerts"
DLQ_ALERTS = "dlq.alerts"
ALERT_SILENCES = "alert-silences"
DLQ_SINK = "dlq.sink"
# What the identity, journeys and friction stages could not read in their input (the ingest
# stage has `dlq.ingest`): the raw message or event, and the reason.
DLQ_IDENTITY = "dlq.identity"
DLQ_JOURNEYS = "dlq.journeys"
DLQ_FRICTION = "dlq.friction"
# Privacy operations (docs/concepts.md §Privacy): the hashed identifiers of erased persons
# (compacted, never tombstoned) and one audit record per erasure.
PRIVACY_SUPPRESSIONS = "privacy-suppressions"
PRIVACY_AUDIT = "privacy-audit"
# Key rotation: a contact hash under a newer key -> the form it was first seen in (compacted).
IDENTITY_KEY_ALIASES = "identity-key-aliases"


@dataclass(frozen=True, slots=True)
class Topics:
    """Resolved topic names for one deployment (the prefix applied)."""

    raw: str
    touchpoints: str
    dlq_ingest: str
    stitched: str
    identity_links: str
    identity_map: str
    identity_audit: str
    identity_merges: str
    journey_updates: str
    journey_transitions: str
    journey_dropoffs: str  # drop-offs, and a cancelling row for each one retracted
    journey_retractions: str
    journey_sessions: str
    journey_handoff: str  # internal: persons and events moving to another partition
    friction_partials: str  # internal, one partition: each partition's closed windows
    friction_windows: str  # global windows of every series, each version
    alerts: str  # alert records (one per problem), keyed by alert id
    dlq_alerts: str  # alert deliveries that failed
    alert_silences: str  # silences of alert pages, keyed by silence id; compacted
    dlq_sink: str  # rows ClickHouse refused, keyed by their insert deduplication token
    dlq_identity: str  # input the identity stage could not read
    dlq_journeys: str  # input the journeys stage could not read
    dlq_friction: str  # input the friction stage could not read
    privacy_suppressions: str  # hashed identifiers of erased persons, keyed by the hash
    privacy_audit: str  # one record per erasure, holding no erased value
    identity_key_aliases: str  # a contact hash under a newer key -> its first form

    @classmethod
    def from_settings(cls, topics: TopicSettings) -> Topics:
        shared = topics.prefix.removesuffix(HISTORY_PREFIX)
        return cls(
            raw=topics.name(RAW),
            touchpoints=topics.name(TOUCHPOINTS),
            dlq_ingest=topics.name(DLQ_INGEST),
            stitched=topics.name(STITCHED),
            identity_links=topics.name(IDENTITY_LINKS),
            identity_map=topics.name(IDENTITY_MAP),
            identity_audit=topics.name(IDENTITY_AUDIT),
            identity_merges=topics.name(IDENTITY_MERGES),
            journey_updates=topics.name(JOURNEY_UPDATES),
            journey_transitions=topics.name(JOURNEY_TRANSITIONS),
            journey_dropoffs=topics.name(JOURNEY_DROPOFFS),
            journey_retractions=topics.name(JOURNEY_RETRACTIONS),
            journey_sessions=topics.name(JOURNEY_SESSIONS),
            journey_handoff=topics.name(JOURNEY_HANDOFF),
            friction_partials=topics.name(FRICTION_PARTIALS),
            friction_windows=topics.name(FRICTION_WINDOWS),
            alerts=topics.name(ALERTS),
            dlq_alerts=topics.name(DLQ_ALERTS),
            alert_silences=topics.name(ALERT_SILENCES),
            dlq_sink=topics.name(DLQ_SINK),
            dlq_identity=topics.name(DLQ_IDENTITY),
            dlq_journeys=topics.name(DLQ_JOURNEYS),
            dlq_friction=topics.name(DLQ_FRICTION),
            # The deployment's, shared by both time domains: an erasure and a key rotation
            # hold for imported history too.
            privacy_suppressions=shared + PRIVACY_SUPPRESSIONS,
            privacy_audit=shared + PRIVACY_AUDIT,
            identity_key_aliases=shared + IDENTITY_KEY_ALIASES,
        )

    def stage_dead_letters(self) -> dict[str, str]:
        """Each stage's dead-letter topic (records in the `schemas.deadletter.DeadLetter`
        shape), by stage."""
        return {
            "ingest": self.dlq_ingest,
            "identity": self.dlq_identity,
            "journeys": self.dlq_journeys,
            "friction": self.dlq_friction,
        }

    def changelog(self, stage: str, table: str) -> str:
        """The compacted changelog of one stage's state table."""
        return f"{self.raw.removesuffix(RAW)}{stage}.{table}.changelog"
