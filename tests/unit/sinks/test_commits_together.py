"""The sink's partitions commit together, and each keeps its own order: intent, insert,
offset past the batch. A partition Kafka refuses to commit waits alone; one whose insert
waits does not hold the others' offsets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, KafkaError, KafkaException

from schemas.settings import Settings
from sinks import runner
from sinks.batching import PartitionBatcher
from sinks.runner import TopicSink

TOPIC = "u.stitched"
TABLE = "touchpoints"


@dataclass
class Committed:
    """What a synchronous commit returns per partition: only these fields are read."""

    topic: str
    partition: int
    error: KafkaError | None = None


@dataclass
class Broker:
    """The consumer side of Kafka as the sink sees it, with every call in order."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    refuse: dict[int, KafkaError] = field(default_factory=dict)  # partition -> its error
    down: KafkaError | None = None  # the whole commit fails

    def commit(self, offsets: list[Any], asynchronous: bool) -> list[Committed]:
        assert asynchronous is False
        self.calls.append(("commit", [(t.partition, t.offset, t.metadata) for t in offsets]))
        if self.down is not None:
            raise KafkaException(self.down)
        return [Committed(t.topic, t.partition, self.refuse.get(t.partition)) for t in offsets]

    def pause(self, partitions: list[Any]) -> None:
        self.calls.append(("pause", [t.partition for t in partitions]))

    def resume(self, partitions: list[Any]) -> None:
        self.calls.append(("resume", [t.partition for t in partitions]))


def sink_over(broker: Broker, partitions: range, monkeypatch: pytest.MonkeyPatch) -> TopicSink:
    sink = TopicSink(Settings(), cast(Client, None), {TOPIC: TABLE})
    sink._consumer = cast(Consumer, broker)
    monkeypatch.setattr(sink._privacy, "refresh", lambda client, now: None)

    def insert(client: object, table: str, rows_json: bytes, token: str) -> int:
        broker.calls.append(("insert", token))
        return len(orjson.loads(rows_json))

    monkeypatch.setattr(runner, "insert_json_rows", insert)
    for p in partitions:
        batcher = PartitionBatcher(p, 1 << 20, 1.0, "topic-id")
        part = runner._Partition(TOPIC, p, "topic-id", batcher)
        sink._parts[(TOPIC, p)] = part
        for offset in range(10 * p, 10 * p + 3):
            batcher.add(offset, orjson.dumps([{"offset": offset}]), 0.0)
        batch = batcher.due(float("inf"))
        assert batch is not None
        sink._enqueue(part, batch)
    return sink


def test_every_partitions_intents_then_inserts_then_offsets_in_two_commits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = Broker()
    sink = sink_over(broker, range(3), monkeypatch)
    sink._advance()
    kinds = [call[0] for call in broker.calls]
    assert kinds == ["commit", "insert", "insert", "insert", "commit"]
    intents, finals = broker.calls[0][1], broker.calls[-1][1]
    assert [(p, offset) for p, offset, _ in intents] == [(0, 0), (1, 10), (2, 20)]
    assert all(metadata for _, _, metadata in intents)  # the planned end, for a replay
    assert finals == [(0, 3, ""), (1, 13, ""), (2, 23, "")]
    assert not any(part.queue for part in sink._parts.values())
    assert sink.stats.batches == 3 and sink.stats.rows == 9


def test_a_partition_whose_commit_kafka_refuses_waits_alone_and_is_not_inserted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = Broker(refuse={1: KafkaError(KafkaError.REBALANCE_IN_PROGRESS)})
    sink = sink_over(broker, range(3), monkeypatch)
    sink._advance()
    inserted = [call[1] for call in broker.calls if call[0] == "insert"]
    assert len(inserted) == 2 and not any("/1/" in token for token in inserted)
    assert ("pause", [1]) in broker.calls
    waiting = sink._parts[(TOPIC, 1)]
    assert len(waiting.queue) == 1 and not waiting.queue[0].intent_committed
    assert not sink._parts[(TOPIC, 0)].queue and not sink._parts[(TOPIC, 2)].queue

    # Kafka settles: the partition goes on from its intent, and only it commits.
    broker.refuse.clear()
    broker.calls.clear()
    waiting.retry_at = 0.0
    sink._advance()
    assert [call[0] for call in broker.calls] == ["commit", "insert", "commit", "resume"]
    assert broker.calls[2][1] == [(1, 13, "")]


def test_an_offset_commit_that_fails_is_retried_without_inserting_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = Broker()
    sink = sink_over(broker, range(2), monkeypatch)
    original = broker.commit

    def final_fails(offsets: list[Any], asynchronous: bool) -> list[Committed]:
        if offsets[0].metadata == "":  # the offsets past the batches
            broker.down = KafkaError(KafkaError.NOT_COORDINATOR)
        try:
            return original(offsets, asynchronous)
        finally:
            broker.down = None

    monkeypatch.setattr(broker, "commit", final_fails)
    sink._advance()
    assert sum(call[0] == "insert" for call in broker.calls) == 2
    assert all(len(part.queue) == 1 for part in sink._parts.values())

    monkeypatch.setattr(broker, "commit", original)
    broker.calls.clear()
    for part in sink._parts.values():
        part.retry_at = 0.0
    sink._advance()
    assert [call[0] for call in broker.calls if call[0] != "resume"] == ["commit"]
    assert broker.calls[0][1] == [(0, 3, ""), (1, 13, "")]
    assert sink.stats.batches == 2  # inserted once each


def test_a_commit_error_kafka_does_not_call_retriable_stops_the_sink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = Broker(down=KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    sink = sink_over(broker, range(2), monkeypatch)
    with pytest.raises(KafkaException):
        sink._advance()
    assert not any(call[0] == "insert" for call in broker.calls)
