"""Producer benchmarks: the Journeys publisher (idempotent, acks=all, micro-batches) beside
plain confluent-kafka produce() of one event per message, on the same events, same broker."""

from __future__ import annotations

import time

from confluent_kafka import Producer

from producers.publisher import Publisher
from schemas.settings import Settings
from schemas.topics import Topics
from schemas.touchpoint import Touchpoint

from .report import Result


def bench_producers(settings: Settings, fragments: list[tuple[str, bytes]]) -> list[Result]:
    topic = Topics.from_settings(settings.topics).raw
    raw = _raw_produce(settings, topic, fragments)
    pub = Publisher(settings.kafka, topic, settings.batch)
    started = time.perf_counter()
    for key, fragment in fragments:
        pub.publish_fragment(key, fragment)
    pub.flush()
    publisher_rate = len(fragments) / (time.perf_counter() - started)

    sample = [Touchpoint.model_validate_json(f) for _k, f in fragments[:100_000]]
    started = time.perf_counter()
    pub.publish_many(sample)
    pub.flush()
    models_rate = len(sample) / (time.perf_counter() - started)
    return [
        Result("raw produce(): 1 event/message, no idempotence", raw, "events/s", None),
        Result("publisher: idempotent, acks=all, batched", publisher_rate, "events/s", raw),
        Result("publisher: from Touchpoint models", models_rate, "events/s", raw),
    ]


def _raw_produce(settings: Settings, topic: str, fragments: list[tuple[str, bytes]]) -> float:
    producer = Producer(
        {
            **settings.kafka.as_librdkafka_dict(),
            "linger.ms": 20,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
        }
    )
    started = time.perf_counter()
    for key, fragment in fragments:
        while True:
            try:
                producer.produce(topic, fragment, key=key.encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    return len(fragments) / (time.perf_counter() - started)
