"""`journeys sink replay-dead-letters`: insert the sink's dead letters again, after a fix.

Reads the sink's dead-letter topic with its own consumer group, from where the last replay
stopped to the end, inserts each record's rows with the record's token, and commits what
`sinks/core/replay.py` allows. A failure ClickHouse gets over is waited out for a while;
if it lasts, the replay stops with nothing lost (uncommitted records are read again next
time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from clickhouse_connect.driver.client import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from pydantic import ValidationError

from schemas.deadletter import SinkDeadLetter
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import insert_json_rows
from sinks.core.failures import Backoff, Failure, clickhouse_failure
from sinks.core.replay import Replayed, ReplayReport, commit_offsets
from sinks.privacy import SinkSuppression

log = logging.getLogger(__name__)

BACKOFF = Backoff(first=0.5, cap=8.0)
ATTEMPTS = 8  # about 30 s of a ClickHouse that does not answer, then the replay stops


class ReplayStoppedError(RuntimeError):
    """ClickHouse stayed unavailable; what was replayed so far is committed."""


def replay_group(settings: Settings) -> str:
    return f"{settings.sink.group_id or settings.topics.group('sink')}-replay"


def replay_dead_letters(settings: Settings, client: Client) -> ReplayReport:
    """Replay every dead letter not replayed yet; commit the ones settled."""
    topic = Topics.from_settings(settings.topics).dlq_sink
    consumer = Consumer(
        {
            **settings.kafka.as_librdkafka_dict(),
            "group.id": replay_group(settings),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    replayed: list[Replayed] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10.0).topics[topic].partitions
        starts = consumer.committed([TopicPartition(topic, p) for p in partitions], 30.0)
        consumer.assign(
            [
                TopicPartition(topic, t.partition, t.offset if t.offset >= 0 else OFFSET_BEGINNING)
                for t in starts
            ]
        )
        try:
            privacy = SinkSuppression(settings)  # erased persons' rows stay out
            privacy.refresh(client, time.monotonic())
            for partition, offset, value in _to_the_end(consumer, len(partitions)):
                replayed.append(_replay_one(client, partition, offset, value, privacy))
        finally:
            offsets = commit_offsets(replayed)
            if offsets:
                consumer.commit(
                    offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                    asynchronous=False,
                )
    finally:
        consumer.close()
    return ReplayReport.of(replayed)


def _to_the_end(consumer: Consumer, partitions: int) -> Iterator[tuple[int, int, bytes]]:
    ended: set[int] = set()
    while len(ended) < partitions:
        for msg in consumer.consume(500, 1.0):
            err = msg.error()
            partition, offset = msg.partition(), msg.offset()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF and partition is not None:
                    ended.add(partition)
                elif err.fatal():
                    raise KafkaException(err)
                else:  # librdkafka reconnects by itself
                    log.warning("kafka: %s", err.str())
                continue
            assert partition is not None and offset is not None, "a record has both"
            yield partition, offset, msg.value() or b""


def _replay_one(
    client: Client,
    partition: int,
    offset: int,
    value: bytes,
    privacy: SinkSuppression | None = None,
) -> Replayed:
    try:
        record = SinkDeadLetter.model_validate_json(value)
    except ValidationError:
        log.warning(
            "offset %d of the dead-letter topic is no sink dead letter; passed over", offset
        )
        return Replayed(partition, offset, "unreadable")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            rows = record.rows_bytes()
            if privacy is not None:
                rows, _ = privacy.filter(record.table, rows)
            written = insert_json_rows(client, record.table, rows, record.token)
        except Exception as exc:
            failure = clickhouse_failure(exc)
            if not failure.transient:
                return _refused(partition, offset, record, failure)
            if attempt == ATTEMPTS:
                raise ReplayStoppedError(
                    f"ClickHouse stayed unavailable ({failure.kind}: {failure.text[:200]})"
                ) from exc
            time.sleep(BACKOFF.delay(attempt))
            continue
        return Replayed(partition, offset, "inserted", written, record.table)
    raise AssertionError("unreachable")


def _refused(partition: int, offset: int, record: SinkDeadLetter, failure: Failure) -> Replayed:
    log.warning("%s still refuses %s (%s)", record.table, record.token, failure.text[:300])
    return Replayed(partition, offset, "refused", table=record.table)
