"""Per-partition micro-batch envelopes: the wire format between Journeys stages
(docs/concepts.md §9).

A Kafka message on a Journeys topic is either

* a batch: ``{"envelope": "journeys.batch", "v": 1, "watermark": <ms or null>, "events": [...]}``,
  an ordered list of events that all belong to the message's partition, plus the sending
  stage's event-time watermark (epoch milliseconds), or
  ``{..., "watermark": <ms>, "source": <partition>, "events": [...]}`` when a stage re-keys
  events: the watermark is that of the sender's input partition `source`, so a reader takes
  the minimum over the sources it has heard from (docs/concepts.md §5), or
* a bare event: any other JSON object, so any Kafka client can write to `raw`.

One Kafka message per batch is what lets a faust agent keep up: its cost is per message, not
per event. Events are kept as encoded JSON fragments when batches are built, so a stage that
forwards events never encodes them twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

ENVELOPE_NAME = "journeys.batch"
ENVELOPE_VERSION = 1
_HEAD = b'{"envelope":"journeys.batch","v":1,"watermark":'


# The dead-letter reasons (`schemas.deadletter.Reason`) a message that cannot be read gets.
EnvelopeReason = Literal["malformed_json", "not_an_object", "unsupported_envelope"]


class EnvelopeError(ValueError):
    """A message that is neither a batch envelope nor a JSON object; carries a short reason."""

    def __init__(self, reason: EnvelopeReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Decoded:
    """The events of one Kafka message, and the watermark its sender declared (if any)."""

    events: list[Any]
    watermark_ms: int | None
    is_batch: bool
    source: int | None = None


def decode(payload: bytes) -> Decoded:
    """Decode a batch envelope or a bare event. Raises `EnvelopeError` with a reason."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError("malformed_json", str(exc)) from None
    if not isinstance(doc, dict):
        raise EnvelopeError("not_an_object", f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("envelope") != ENVELOPE_NAME:
        return Decoded([doc], None, is_batch=False)
    version = doc.get("v")
    if type(version) is not int or version != ENVELOPE_VERSION:  # JSON true is not 1
        # Only a number is repeated: a dead letter's detail never echoes text it was sent.
        shown = version if type(version) is int else f"of type {type(version).__name__}"
        raise EnvelopeError("unsupported_envelope", f"envelope version {shown}")
    events = doc.get("events")
    if not isinstance(events, list):
        raise EnvelopeError("unsupported_envelope", "envelope without an events list")
    watermark = doc.get("watermark")
    if watermark is not None and type(watermark) is not int:
        raise EnvelopeError("unsupported_envelope", "watermark must be integer milliseconds")
    source = doc.get("source")
    if source is not None and (type(source) is not int or source < 0):
        raise EnvelopeError("unsupported_envelope", "source must be a partition number")
    return Decoded(events, watermark, is_batch=True, source=source)


def encode(fragments: list[bytes], watermark_ms: int | None, source: int | None = None) -> bytes:
    """Wrap already-encoded events into one batch envelope; `source` names the sender's input
    partition whose watermark this is (re-keying stages only)."""
    mark = b"null" if watermark_ms is None else str(int(watermark_ms)).encode()
    if source is not None:
        mark += b',"source":%d' % source
    return b"".join((_HEAD, mark, b',"events":[', b",".join(fragments), b"]}"))


_OVERHEAD = len(_HEAD) + len(b',"events":[]}') + 20


@dataclass(slots=True)
class PartitionBuffer:
    """Events waiting to be sent to one partition, bounded by count and bytes."""

    fragments: list[bytes] = field(default_factory=list)
    size: int = _OVERHEAD


class BatchBuilder:
    """Groups encoded events into per-partition batches bounded by count and bytes.

    Pure: it never sends. `add` returns the batches that became full; `drain` returns the
    rest. Order within a partition is preserved.
    """

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._buffers: dict[int, PartitionBuffer] = {}

    def add(self, partition: int, fragment: bytes) -> list[bytes] | None:
        """Queue one event; return the finished batch fragments if this partition is full."""
        buf = self._buffers.get(partition)
        if buf is None:
            buf = self._buffers[partition] = PartitionBuffer()
        full: list[bytes] | None = None
        if buf.fragments and buf.size + len(fragment) + 1 > self.max_bytes:
            full = buf.fragments
            buf.fragments, buf.size = [], _OVERHEAD
        buf.fragments.append(fragment)
        buf.size += len(fragment) + 1
        if full is None and len(buf.fragments) >= self.max_events:
            full = buf.fragments
            buf.fragments, buf.size = [], _OVERHEAD
        return full

    def drain(self) -> dict[int, list[bytes]]:
        """Take every partition's pending events."""
        out = {p: b.fragments for p, b in self._buffers.items() if b.fragments}
        self._buffers.clear()
        return out

    def __len__(self) -> int:
        return sum(len(b.fragments) for b in self._buffers.values())
