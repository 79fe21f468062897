"""Everything a stage writes to Kafka, through one transactional confluent-kafka producer.

faust's own producer and table changelog path manage a few thousand messages/s here, so
stages send their outputs, dead letters and state changelogs through this producer instead.
All of it goes into one Kafka transaction that is committed just before faust commits the
source offsets (see `CommitSensor`), so a stage's outputs and its state change become
visible together or not at all. The source offsets are not part of that transaction; the
state records the last applied offset per input partition instead (`state.py`).

Rows (`produce_rows`) wait for the commit and leave as few envelopes as possible per topic,
partition and source. Nothing can read them before the commit anyway, and at live rates one
input message of a few events otherwise became one small envelope on every partition of the
next topic: the stage after it then spent its time on messages, not events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Producer

from schemas import envelope
from schemas.settings import KafkaSettings

log = logging.getLogger(__name__)

BeforeCommit = Callable[[], None]
# Well under the broker's default record limit (1 MB): what one input makes can be large (a
# watermark jump drops off thousands of journeys at once; a handoff carries whole persons).
MAX_ENVELOPE_BYTES = 512 * 1024


def chunked(rows: list[bytes], max_bytes: int = MAX_ENVELOPE_BYTES) -> list[list[bytes]]:
    """Rows in consecutive groups whose envelope stays under about `max_bytes` (one row over
    it goes alone); always at least one group, empty when there are no rows."""
    chunks: list[list[bytes]] = [[]]
    size = 0
    for row in rows:
        if chunks[-1] and size + len(row) + 1 > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += len(row) + 1
    return chunks


def envelopes(
    rows: list[bytes],
    watermark_ms: int | None,
    source: int | None = None,
    max_bytes: int = MAX_ENVELOPE_BYTES,
) -> list[bytes]:
    """`rows` as consecutive envelopes of at most about `max_bytes` each (`chunked`). Only the
    last carries the watermark: a reader must have every row before it hears that time has
    moved past them."""
    chunks = chunked(rows, max_bytes)
    last = len(chunks) - 1
    return [
        envelope.encode(chunk, watermark_ms if n == last else None, source)
        for n, chunk in enumerate(chunks)
    ]


@dataclass(slots=True)
class Held:
    """Rows for one (topic, partition, source) waiting for the commit, and the watermark the
    last of them came with."""

    rows: list[bytes] = field(default_factory=list)
    watermark_ms: int | None = None
    size: int = 0


class SenderError(RuntimeError):
    """The transactional producer failed; the stage must stop and restore from Kafka."""


class TransactionalSender:
    """A transactional producer whose transaction spans one faust commit interval."""

    def __init__(
        self,
        kafka: KafkaSettings,
        transactional_id: str,
        linger_ms: int = 20,
        transaction_timeout_ms: int = 30_000,
    ) -> None:
        conf: dict[str, Any] = {
            **kafka.as_librdkafka_dict(),
            "transactional.id": transactional_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 512 * 1024,
            "transaction.timeout.ms": transaction_timeout_ms,
            "partitioner": "murmur2_random",
        }
        self._producer = Producer(conf)
        self._before_commit: list[BeforeCommit] = []
        self._held: dict[tuple[str, int, int | None], Held] = {}
        self._dirty = False
        self.transactions = 0
        self.messages = 0
        try:
            # Fences an earlier incarnation with the same id and aborts its open transaction.
            self._producer.init_transactions(30.0)
        except KafkaException as exc:
            raise SenderError(
                f"Kafka transactions could not start ({exc}); is Kafka reachable at "
                f"{kafka.bootstrap_servers}? (JOURNEYS_KAFKA__BOOTSTRAP_SERVERS)"
            ) from exc
        self._producer.begin_transaction()

    def before_commit(self, hook: BeforeCommit) -> None:
        """Run `hook` (it may call `produce`) right before each transaction commits."""
        self._before_commit.append(hook)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one message in the open transaction, waiting (never dropping) when full."""
        # Called once per changelog record: positional arguments and no retry loop set up
        # unless the queue is full (a third of this call's cost otherwise).
        try:
            if partition is None:
                self._producer.produce(topic, value, key)
            else:
                self._producer.produce(topic, value, key, partition)
        except BufferError:
            self._produce_when_room(topic, value, key, partition)
        self._dirty = True
        self.messages += 1

    def _produce_when_room(
        self, topic: str, value: bytes | None, key: bytes | None, partition: int | None
    ) -> None:
        while True:
            self._producer.poll(0.05)
            try:
                if partition is None:
                    self._producer.produce(topic, value, key)
                else:
                    self._producer.produce(topic, value, key, partition)
                return
            except BufferError:
                continue

    def produce_rows(
        self,
        topic: str,
        rows: list[bytes],
        watermark_ms: int | None,
        partition: int,
        source: int | None = None,
    ) -> None:
        """`rows` to one partition, sent at the commit after the rows sent there before with
        the same `source`, together in envelopes small enough for the broker (`envelopes`).
        The last envelope carries the latest watermark given (None keeps the one before): a
        reader hears time move only after every row before it. A partition written here must
        not also get `produce` calls, which would overtake the held rows."""
        key = (topic, partition, source)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = Held()
        if rows:
            held.rows += rows
            held.size += sum(map(len, rows)) + len(rows)
            if held.size > MAX_ENVELOPE_BYTES:
                # Full: the rows leave now, the watermark with the last envelope at the commit.
                for message in envelopes(held.rows, None, source):
                    self.produce(topic, message, None, partition)
                held.rows, held.size = [], 0
        if watermark_ms is not None:
            held.watermark_ms = watermark_ms
        self._dirty = True

    def _send_held(self) -> None:
        held, self._held = self._held, {}
        for (topic, partition, source), rows in held.items():
            if not rows.rows and rows.watermark_ms is None:
                continue  # its rows left when they filled an envelope
            for message in envelopes(rows.rows, rows.watermark_ms, source):
                self.produce(topic, message, None, partition)

    def commit(self) -> None:
        """Make everything produced since the last commit durable and visible, atomically."""
        for hook in self._before_commit:
            hook()
        self._send_held()
        if not self._dirty:
            return
        started = time.perf_counter()
        try:
            self._producer.commit_transaction(60.0)
            self._producer.begin_transaction()
        except KafkaException as exc:
            raise SenderError(f"committing the stage's transaction failed: {exc}") from exc
        self._dirty = False
        self.transactions += 1
        log.debug("transaction committed in %.1f ms", (time.perf_counter() - started) * 1e3)

    @property
    def pending(self) -> bool:
        """Whether the open transaction holds anything."""
        return self._dirty

    def send_open_transaction(self, timeout: float = 30.0) -> None:
        """Deliver what the open transaction holds to the broker without committing it (for
        fault injection: a crash now leaves records that readers must skip)."""
        self._send_held()
        self._producer.flush(timeout)

    def poll(self) -> None:
        """Serve delivery events; cheap, call it once per processed message."""
        self._producer.poll(0)

    def close(self) -> None:
        """Commit what is pending and release the producer."""
        try:
            self.commit()
        finally:
            self._producer.flush(10.0)
