"""The ClickHouse sink process: consume a topic, insert batches, then commit their offsets.

Per batch: (1) commit the batch's first offset with its planned end as metadata, (2) insert
the rows with the offset range as deduplication token, (3) commit the offset after the
batch. A crash between (2) and (3) re-sends the identical batch, which ClickHouse drops.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import Counter, Histogram

from schemas.settings import Settings
from schemas.topics import Topics
from sinks.batching import Batch, PartitionBatcher, parse_intent, rows_of
from sinks.clickhouse import insert_json_rows

log = logging.getLogger(__name__)

ROWS = Counter("journeys_sink_rows_total", "Rows inserted into ClickHouse", ["table"])
BATCHES = Counter("journeys_sink_batches_total", "Batches inserted into ClickHouse", ["table"])
INSERT_SECONDS = Histogram("journeys_sink_insert_seconds", "Time per ClickHouse insert", ["table"])
RETRIES = Counter("journeys_sink_insert_retries_total", "Insert attempts that failed", ["table"])

EXIT_FAULT_INJECTED = 86


def pipeline_routes(topics: Topics) -> dict[str, str]:
    """Which topic the sink writes into which table."""
    return {
        topics.stitched: "touchpoints",
        topics.identity_links: "identity_links",
        topics.identity_map: "identity_overrides",
        topics.identity_audit: "identity_audit",
        topics.journey_updates: "journeys",
        topics.journey_transitions: "journey_transitions",
        topics.journey_dropoffs: "dropoffs",
        topics.journey_retractions: "journey_retractions",
        topics.journey_sessions: "sessions",
        topics.friction_windows: "friction_windows",
        topics.alerts: "alerts",
    }


@dataclass
class SinkStats:
    batches: int = 0
    rows: int = 0
    messages: int = 0


@dataclass
class TopicSink:
    """Writes topics into ClickHouse tables (`routes`: topic -> table) with one consumer."""

    settings: Settings
    client: Client
    routes: dict[str, str]
    stats: SinkStats = field(default_factory=SinkStats)
    max_bytes: int = 32 * 1024 * 1024
    _batchers: dict[tuple[str, int], PartitionBatcher] = field(default_factory=dict)
    _consumer: Consumer | None = None

    def _open(self) -> Consumer:
        consumer = Consumer(
            {
                **self.settings.kafka.as_librdkafka_dict(),
                "group.id": self.settings.sink.group_id or self.settings.topics.group("sink"),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": 10_000,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
            }
        )
        consumer.subscribe(
            sorted(self.routes), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        return consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30.0)
        for tp in committed:
            batcher = PartitionBatcher(tp.partition, self.max_bytes, self.settings.sink.max_seconds)
            batcher.planned_end = parse_intent(tp.metadata)
            self._batchers[(tp.topic, tp.partition)] = batcher
        assigned = [f"{tp.topic}[{tp.partition}]" for tp in partitions]
        log.info("sink assigned", extra={"partitions": assigned})

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Uncommitted rows are simply re-read by the next owner.
        for tp in partitions:
            self._batchers.pop((tp.topic, tp.partition), None)

    def run(
        self, should_stop: Callable[[], bool], idle_exit_seconds: float | None = None
    ) -> SinkStats:
        """Consume until `should_stop()` (or idle this long); write what is pending first."""
        consumer = self._consumer = self._open()
        last_data = time.monotonic()
        try:
            while not should_stop():
                msgs = consumer.consume(5_000, 0.2)
                now = time.monotonic()
                if msgs:
                    last_data = now
                for msg in msgs:
                    self._take(msg, now)
                for (topic, _), batcher in list(self._batchers.items()):
                    batch = batcher.due(now)
                    if batch is not None:
                        self._write(topic, batch)
                if not self._batchers:
                    last_data = now  # idle time counts only while partitions are assigned
                elif idle_exit_seconds is not None and now - last_data > idle_exit_seconds:
                    break
            self._write_all_pending()
        finally:
            consumer.close()
            self._consumer = None
        return self.stats

    def _take(self, msg: Any, now: float) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            raise KafkaException(err)
        topic = msg.topic()
        batcher = self._batchers.get((topic, msg.partition()))
        if batcher is None:
            return
        self.stats.messages += 1
        value = msg.value()
        rows = b"" if value is None else rows_of(value)  # a compaction tombstone has no row
        for batch in batcher.add(msg.offset(), rows, now):
            self._write(topic, batch)

    def _write_all_pending(self) -> None:
        for (topic, _), batcher in list(self._batchers.items()):
            batch = batcher.due(float("inf"))
            if batch is not None:
                self._write(topic, batch)

    def _write(self, topic: str, batch: Batch) -> None:
        consumer = self._consumer
        assert consumer is not None
        tp = TopicPartition(topic, batch.partition, batch.first, metadata=batch.intent())
        consumer.commit(offsets=[tp], asynchronous=False)
        rows = self._insert(topic, batch)
        self.stats.batches += 1
        self.stats.rows += rows
        limit = self.settings.faults.sink_exit_after_inserts
        if limit is not None and self.stats.batches >= limit:
            log.warning("fault injection: exiting between insert and offset commit")
            os._exit(EXIT_FAULT_INJECTED)
        done = TopicPartition(topic, batch.partition, batch.last + 1)
        consumer.commit(offsets=[done], asynchronous=False)

    def _insert(self, topic: str, batch: Batch) -> int:
        table = self.routes[topic]
        body = batch.body()
        if body == b"[]":
            return 0
        delay = 0.5
        for attempt in range(1, 8):
            started = time.perf_counter()
            try:
                rows = insert_json_rows(self.client, table, body, batch.token(topic))
            except Exception:
                RETRIES.labels(table).inc()
                if attempt == 7:
                    raise
                log.warning("insert failed; retrying", exc_info=True, extra={"attempt": attempt})
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
                continue
            INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
            break
        else:  # pragma: no cover - the loop either breaks or raises
            return 0
        ROWS.labels(table).inc(rows)
        BATCHES.labels(table).inc()
        return rows
