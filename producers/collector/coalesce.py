"""Events of concurrent requests grouped into per-partition batches that remember whose
events they carry, so each request can be answered when *its* batches are acknowledged.

Pure. Batching across requests matters downstream: a faust stage pays per Kafka message
(docs/concepts.md §9), and a 100-event request spread over 12 partitions alone would make messages
of about 8 events. Order within a partition is kept, bounds follow `BatchSettings`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from schemas import envelope

Owner = TypeVar("Owner")


@dataclass(slots=True)
class Batch(Generic[Owner]):
    """One future Kafka message: its partition, events and how many belong to whom."""

    partition: int
    fragments: list[bytes] = field(default_factory=list)
    owners: Counter[Owner] = field(default_factory=Counter)
    size: int = 0

    def encode(self) -> bytes:
        return envelope.encode(self.fragments, None)


class Coalescer(Generic[Owner]):
    """Per-partition batches bounded by event count and bytes."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._open: dict[int, Batch[Owner]] = {}

    def add(self, partition: int, fragment: bytes, owner: Owner) -> Batch[Owner] | None:
        """Queue one event; return a batch that is complete (the full one before this event
        when it would not fit, or the one it filled)."""
        batch = self._open.get(partition)
        done: Batch[Owner] | None = None
        if batch is not None and batch.fragments and batch.size + len(fragment) > self.max_bytes:
            done = batch
            batch = None
        if batch is None:
            batch = self._open[partition] = Batch(partition)
        batch.fragments.append(fragment)
        batch.owners[owner] += 1
        batch.size += len(fragment) + 1
        if done is None and len(batch.fragments) >= self.max_events:
            done = self._open.pop(partition)
        return done

    def drain(self) -> list[Batch[Owner]]:
        """Every open batch, now."""
        out = list(self._open.values())
        self._open.clear()
        return out

    def __len__(self) -> int:
        return sum(len(b.fragments) for b in self._open.values())
