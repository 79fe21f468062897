"""Pure batching for the ClickHouse sink: contiguous offset ranges of one partition.

A batch's offset range is its deduplication token, so a batch re-sent after a crash must be
byte-identical to the first attempt. The sink records the range it is about to insert (as
metadata on the offset commit) before inserting; after a restart the partition's first batch
is cut at exactly that recorded end (`planned_end`), whatever the size and time bounds say.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson

from schemas import envelope

log = logging.getLogger(__name__)

_EVENTS = b',"events":['
INTENT_PREFIX = "journeys-sink:v1:end="


@dataclass(slots=True)
class Batch:
    """Rows (JSON object fragments) from offsets `first..last` of one partition."""

    partition: int
    first: int
    last: int
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    opened_at: float = 0.0

    def token(self, topic: str) -> str:
        return f"{topic}/{self.partition}/{self.first}-{self.last}"

    def body(self) -> bytes:
        """The rows as one JSON array (ClickHouse's JSONEachRow accepts it)."""
        return b"[" + b",".join(p for p in self.parts if p) + b"]"

    def intent(self) -> str:
        return f"{INTENT_PREFIX}{self.last}"


def parse_intent(metadata: str | None) -> int | None:
    """The planned end offset recorded with a commit, if any."""
    if metadata and metadata.startswith(INTENT_PREFIX):
        try:
            return int(metadata[len(INTENT_PREFIX) :])
        except ValueError:
            return None
    return None


def rows_of(payload: bytes) -> bytes:
    """The comma-separated event objects of one message, without decoding them when the
    message is a canonical envelope written by a Journeys stage.

    The shortcut trusts the envelope's layout (events last), which holds for every topic a
    sink reads: only Journeys stages write them. Anything else is decoded.
    """
    if payload.startswith(b'{"envelope":"journeys.batch","v":1,'):
        start = payload.find(_EVENTS)
        if start != -1 and payload.endswith(b"]}"):
            return payload[start + len(_EVENTS) : -2]
    decoded = envelope.decode(payload)
    return b",".join(orjson.dumps(e) for e in decoded.events)


class PartitionBatcher:
    """Accumulates one partition's messages into batches bounded by bytes and age."""

    def __init__(self, partition: int, max_bytes: int, max_seconds: float) -> None:
        self.partition = partition
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.planned_end: int | None = None
        self._open: Batch | None = None

    def add(self, offset: int, rows: bytes, now: float) -> list[Batch]:
        """Add one message; return the batches that are complete."""
        done: list[Batch] = []
        if self.planned_end is not None and offset > self.planned_end:
            # The planned end is gone (retention); the recorded batch cannot be rebuilt.
            log.warning("planned batch end %s not seen; cutting early", self.planned_end)
            if self._open:
                done.append(self._close())
            self.planned_end = None
        batch = self._open
        if batch is None:
            batch = self._open = Batch(self.partition, offset, offset, opened_at=now)
        batch.parts.append(rows)
        batch.last = offset
        batch.size += len(rows) + 1
        if self.planned_end is not None:
            if offset >= self.planned_end:
                done.append(self._close())
        elif batch.size >= self.max_bytes:
            done.append(self._close())
        return done

    def due(self, now: float) -> Batch | None:
        """The open batch if it is old enough to write (never one with a planned end)."""
        batch = self._open
        if batch is None or self.planned_end is not None:
            return None
        if now - batch.opened_at >= self.max_seconds:
            return self._close()
        return None

    def _close(self) -> Batch:
        batch = self._open
        assert batch is not None
        self._open = None
        self.planned_end = None
        return batch
