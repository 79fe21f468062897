"""Pure batching for the ClickHouse sink: contiguous offset ranges of one partition.

A batch's offset range, with the topic's id, is its deduplication token, so a batch re-sent
after a crash must be byte-identical to the first attempt. The sink records the range it is
about to insert (as metadata on the offset commit) before inserting; after a restart the
partition's first batch is cut at exactly that recorded end (`planned_end`), whatever the
size and time bounds say.

The topic id (Kafka's topic UUID) is in the token so that a recreated topic, whose offsets
start again at 0, never matches a batch of the old one. Sinks before it recorded
`journeys-sink:v1:end=N` and named batches `<topic>/<partition>/<first>-<last>`: a batch
planned that way is rebuilt with that token, so an upgrade in the middle of a crash does
not insert it twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import orjson

from schemas import envelope

log = logging.getLogger(__name__)

_EVENTS = b',"events":['
INTENT_PREFIX = "journeys-sink:v1:end="
INTENT_V2_PREFIX = "journeys-sink:v2:"


@dataclass(frozen=True, slots=True)
class Intent:
    """A recorded planned end, and the topic id its batch was named with (None: a v1
    intent, whose batch is named without one)."""

    end: int
    topic_id: str | None = None


@dataclass(slots=True)
class Batch:
    """Rows (JSON object fragments) from offsets `first..last` of one partition."""

    partition: int
    first: int
    last: int
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    opened_at: float = 0.0
    offsets: list[int] = field(default_factory=list)  # of each part, in order
    topic_id: str | None = None  # None: planned by a v1 sink, so named as it named it

    def token(self, topic: str) -> str:
        if self.topic_id is None:
            return f"{topic}/{self.partition}/{self.first}-{self.last}"
        return f"{topic}/{self.topic_id}/{self.partition}/{self.first}-{self.last}"

    def body(self) -> bytes:
        """The rows as one JSON array (ClickHouse's JSONEachRow accepts it)."""
        return b"[" + b",".join(p for p in self.parts if p) + b"]"

    def intent(self) -> str:
        """The commit metadata recording this batch's end (v1 for a batch a v1 sink planned,
        so a crash now rebuilds it under its old name again)."""
        if self.topic_id is None:
            return f"{INTENT_PREFIX}{self.last}"
        return f"{INTENT_V2_PREFIX}{self.topic_id}:end={self.last}"


def parse_intent(metadata: str | None) -> Intent | None:
    """The planned end recorded with a commit, if any."""
    if not metadata:
        return None
    if metadata.startswith(INTENT_PREFIX):
        end = _offset(metadata[len(INTENT_PREFIX) :])
        return None if end is None else Intent(end)
    if metadata.startswith(INTENT_V2_PREFIX):
        topic_id, sep, end_text = metadata[len(INTENT_V2_PREFIX) :].partition(":end=")
        end = _offset(end_text)
        if not sep or not topic_id or end is None:
            return None
        return Intent(end, topic_id)
    return None


def _offset(text: str) -> int | None:
    return int(text) if text.isdigit() else None


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

    def __init__(
        self, partition: int, max_bytes: int, max_seconds: float, topic_id: str | None = None
    ) -> None:
        self.partition = partition
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.topic_id = topic_id  # names new batches; None names them as v1 did
        self.planned_end: int | None = None
        self._planned_v1 = False
        self._open: Batch | None = None

    def plan(self, intent: Intent | None) -> None:
        """Cut the first batch at a recorded end: one this topic's batches recorded, or a
        v1 intent (named the v1 way). An intent of another topic id (the topic was
        recreated under the same name) plans nothing."""
        if intent is None or (intent.topic_id is not None and intent.topic_id != self.topic_id):
            if intent is not None:
                log.warning(
                    "planned batch end %s belongs to topic id %s, not %s; ignored",
                    intent.end,
                    intent.topic_id,
                    self.topic_id,
                )
            self.planned_end = None
            return
        self.planned_end = intent.end
        self._planned_v1 = intent.topic_id is None

    def add(self, offset: int, rows: bytes, now: float) -> list[Batch]:
        """Add one message; return the batches that are complete."""
        done: list[Batch] = []
        if self.planned_end is not None and offset > self.planned_end:
            # The planned end is gone (retention); the recorded batch cannot be rebuilt.
            log.warning("planned batch end %s not seen; cutting early", self.planned_end)
            if self._open:
                self._open.topic_id = self.topic_id  # not the recorded batch: a new name
                done.append(self._close())
            self.planned_end = None
            self._planned_v1 = False
        batch = self._open
        if batch is None:
            named = None if self._planned_v1 and self.planned_end is not None else self.topic_id
            batch = self._open = Batch(
                self.partition, offset, offset, opened_at=now, topic_id=named
            )
        batch.parts.append(rows)
        batch.offsets.append(offset)
        batch.last = offset
        batch.size += len(rows) + 1
        if self.planned_end is not None:
            if offset >= self.planned_end:
                done.append(self._close())
        elif batch.size >= self.max_bytes:
            done.append(self._close())
        return done

    @property
    def open(self) -> bool:
        """Whether messages wait in a batch not yet closed."""
        return self._open is not None

    def due(self, now: float, caught_up: bool = False) -> Batch | None:
        """The open batch if it is old enough to write, or `caught_up` (nothing more in the
        partition to read now); never one with a planned end, which is cut there."""
        batch = self._open
        if batch is None or self.planned_end is not None:
            return None
        if caught_up or now - batch.opened_at >= self.max_seconds:
            return self._close()
        return None

    def _close(self) -> Batch:
        batch = self._open
        assert batch is not None
        self._open = None
        self.planned_end = None
        self._planned_v1 = False
        return batch
