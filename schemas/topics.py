"""Topic names and what each one carries. ARCHITECTURE.md has the full table."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.settings import TopicSettings

RAW = "raw"
TOUCHPOINTS = "touchpoints"
DLQ_INGEST = "dlq.ingest"


@dataclass(frozen=True, slots=True)
class Topics:
    """Resolved topic names for one deployment (the prefix applied)."""

    raw: str
    touchpoints: str
    dlq_ingest: str

    @classmethod
    def from_settings(cls, topics: TopicSettings) -> Topics:
        return cls(
            raw=topics.name(RAW),
            touchpoints=topics.name(TOUCHPOINTS),
            dlq_ingest=topics.name(DLQ_INGEST),
        )

    def changelog(self, stage: str, table: str) -> str:
        """The compacted changelog of one stage's state table."""
        return f"{self.raw.removesuffix(RAW)}{stage}.{table}.changelog"
