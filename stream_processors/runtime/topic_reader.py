"""Reading a topic's committed records from the beginning to its current end, in bulk.

Used to restore state, to report dead letters, and by tests: confluent-kafka reads here at
~200,000 records/s, against ~6,000 for faust's own changelog recovery.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from schemas.settings import KafkaSettings


def read_to_end(
    kafka: KafkaSettings, topic: str, partitions: Iterable[int] | None = None
) -> Iterator[Any]:
    """Every committed record of `partitions` (default: all of the topic's), partition by
    partition in offset order, stopping at each partition's end as of the read."""
    consumer = Consumer(
        {
            **kafka.as_librdkafka_dict(),
            "group.id": f"journeys-read-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
    )
    try:
        if partitions is None:
            partitions = consumer.list_topics(topic, timeout=10.0).topics[topic].partitions
        pending = set(partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        while pending:
            for msg in consumer.consume(50_000, 1.0):
                err = msg.error()
                if err is None:
                    yield msg
                elif err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                else:
                    raise KafkaException(err)
    finally:
        consumer.close()
