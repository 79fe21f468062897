"""The one Kafka publisher for every channel: validated touchpoints in, per-partition
micro-batches out (docs/concepts.md §9), never losing an event it accepted.

Events are keyed by their most stable identifier and partitioned with murmur2, as Kafka's
Java client does, so a person's events stay in order and a re-sent event lands on the same
partition (where the ingest stage's deduplication sees it). The producer is idempotent with
`acks=all`; `flush()` returns only when every batch is acknowledged or has failed, and
failures are counted and raised, never dropped silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter

from schemas import envelope
from schemas.partitioning import partition_for
from schemas.settings import BatchSettings, KafkaSettings
from schemas.touchpoint import Touchpoint

log = logging.getLogger(__name__)

PUBLISHED = Counter("journeys_producer_events_acked_total", "Events acknowledged by Kafka")
FAILED = Counter("journeys_producer_events_failed_total", "Events Kafka did not acknowledge")
BACKPRESSURE = Counter(
    "journeys_producer_backpressure_total", "Times the local queue was full and we waited"
)


class PublishError(RuntimeError):
    """Some events were not acknowledged by Kafka; `failed` counts them."""

    def __init__(self, failed: int, reasons: list[str]) -> None:
        super().__init__(f"{failed} events were not acknowledged by Kafka: {reasons[:3]}")
        self.failed = failed
        self.reasons = reasons


@dataclass
class DeliveryStats:
    queued: int = 0
    acked: int = 0
    failed: int = 0
    reasons: list[str] = field(default_factory=list)


class Publisher:
    """Publishes touchpoints to one topic in per-partition micro-batches."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        batch: BatchSettings,
        producer_conf: dict[str, Any] | None = None,
    ) -> None:
        conf: dict[str, Any] = {
            **kafka.as_librdkafka_dict(),
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 256 * 1024,
            # Agrees with Kafka's default partitioner, so any client's keyed event and our
            # explicitly partitioned batches meet on the same partition.
            "partitioner": "murmur2_random",
            **(producer_conf or {}),
        }
        self.topic = topic
        self._producer = Producer(conf)
        self.partitions = self._partition_count(kafka)
        self._builder = envelope.BatchBuilder(batch.max_events, batch.max_bytes)
        self._linger = batch.linger_seconds
        self._last_drain = time.monotonic()
        self.stats = DeliveryStats()

    def _partition_count(self, kafka: KafkaSettings) -> int:
        # A topic created a moment ago may not be in the metadata yet: look a few times.
        for attempt in range(20):
            try:
                meta = self._producer.list_topics(self.topic, timeout=10.0)
            except KafkaException as exc:
                raise PublishError(
                    0, [f"Kafka unreachable at {kafka.bootstrap_servers}: {exc}"]
                ) from None
            topic = meta.topics.get(self.topic)
            if topic is not None and topic.error is None and topic.partitions:
                return len(topic.partitions)
            if attempt < 19:
                time.sleep(0.25)
        raise PublishError(0, [f"topic {self.topic} does not exist; run `journeys topics`"])

    def publish(self, event: Touchpoint) -> None:
        """Queue one validated event; it is sent with its partition's next batch."""
        self.publish_fragment(event.identity.partition_key(), event.model_dump_json().encode())

    def publish_fragment(self, key: str, fragment: bytes) -> None:
        """Queue one already-encoded event under its partition key."""
        partition = partition_for(key.encode(), self.partitions)
        full = self._builder.add(partition, fragment)
        if full is not None:
            self._send(partition, full)
        if time.monotonic() - self._last_drain >= self._linger:
            self.drain()

    def publish_bare(self, key: str, payload: bytes) -> None:
        """Send one payload as its own message, keyed, as any Kafka client could; Kafka's
        partitioner (murmur2, as configured) picks the partition."""
        self._produce(payload, 1, key=key.encode())

    def publish_many(self, events: Iterable[Touchpoint]) -> None:
        for event in events:
            self.publish(event)

    def drain(self) -> None:
        """Send every partly filled batch now."""
        for partition, fragments in self._builder.drain().items():
            self._send(partition, fragments)
        self._last_drain = time.monotonic()
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> DeliveryStats:
        """Send everything and wait for Kafka's answer; raise if anything failed."""
        self.drain()
        remaining = self._producer.flush(timeout)
        if remaining:
            raise PublishError(
                remaining, [f"{remaining} batches still unacknowledged after {timeout}s"]
            )
        if self.stats.failed:
            raise PublishError(self.stats.failed, self.stats.reasons)
        return self.stats

    def send_tracked(
        self,
        messages: Iterable[tuple[str, int, bytes, Callable[[str | None], None]]],
        poll_seconds: float = 0.0,
    ) -> None:
        """Produce each `(topic, partition, value, on_done)` now, then serve delivery reports
        for up to `poll_seconds` (a poll thread calls this with no messages).

        For callers that answer someone only once Kafka has *their* messages, such as the
        HTTP collector, where a global `flush` per request would stall every other request.
        `on_done` gets None when Kafka acknowledged the message, else the error text; it runs
        in whichever thread serves reports, so it must be quick and thread-safe. These
        messages bypass the batch builder and `stats`: their outcome is the caller's.
        """
        for topic, partition, value, on_done in messages:

            def report(
                err: KafkaError | None, _msg: Message, done: Callable[[str | None], None] = on_done
            ) -> None:
                done(None if err is None else str(err))

            while True:
                try:
                    self._producer.produce(topic, value, partition=partition, on_delivery=report)
                    break
                except BufferError:
                    # The local queue is full: wait for Kafka to catch up, never drop.
                    BACKPRESSURE.inc()
                    self._producer.poll(0.05)
        self._producer.poll(poll_seconds)

    def _send(self, partition: int, fragments: list[bytes]) -> None:
        self._produce(envelope.encode(fragments, None), len(fragments), partition=partition)

    def _produce(self, value: bytes, count: int, **where: Any) -> None:

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self.stats.acked += count
                PUBLISHED.inc(count)
            else:
                self.stats.failed += count
                self.stats.reasons.append(str(err))
                FAILED.inc(count)
                log.error("batch not acknowledged", extra={"events": count, "error": str(err)})

        while True:
            try:
                self._producer.produce(self.topic, value, on_delivery=on_delivery, **where)
                break
            except BufferError:
                # The local queue is full: wait for Kafka to catch up, never drop.
                BACKPRESSURE.inc()
                self._producer.poll(0.05)
        self.stats.queued += count
