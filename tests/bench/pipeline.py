"""Benchmarks through the real local broker and chDB, each beside a baseline from the same run.

Stage throughput is read from the stage's committed offsets: the events between its first
and its last offset commit, over the time between them, so start-up and group join are not
counted (they are measured separately, as the restart figure).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from deploy.kafka_admin import ensure_topics
from schemas import envelope
from schemas.partitioning import partition_for
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import JSON_INSERT_SETTINGS, migrate, session
from sinks.runner import TopicSink
from tests.integration.helpers import counts_stage, journeys, terminate

from .report import Result

ROOT = Path(__file__).resolve().parents[2]
PER_MESSAGE = 500


def bench_settings(tmp: Path, partitions: int = 8) -> Settings:
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        data_dir=tmp / run,
        kafka={"bootstrap_servers": os.environ["JOURNEYS_KAFKA__BOOTSTRAP_SERVERS"]},
        topics={"prefix": f"bench{run}.", "partitions": partitions},
        clickhouse={"dsn": f"chdb://{tmp / run / 'clickhouse'}"},
        processor={"worker_id": f"bench{run}", "metrics_port": None},
    )
    ensure_topics(settings)
    return settings


def valid_fragments(count: int, keys: int, offset: int = 0) -> list[tuple[str, bytes]]:
    """Valid touchpoints as (partition key, JSON), made fast by formatting."""
    base = datetime.now(UTC) - timedelta(hours=6)
    out = []
    channels = ("web", "app", "call_center", "store")
    for i in range(offset, offset + count):
        key = f"customer_id:c{i % keys}"
        occurred = (base + timedelta(milliseconds=i)).isoformat()
        event_id = uuid.UUID(int=i + 1, version=4)
        text = (
            f'{{"event_id":"{event_id}","channel":"{channels[i % 4]}",'
            f'"source":"bench","event_type":"page_view","occurred_at":"{occurred}",'
            f'"identity":{{"customer_id":"c{i % keys}"}},"touchpoint":"/p/{i % 50}",'
            f'"properties":{{"n":{i % 97}}}}}'
        )
        out.append((key, text.encode()))
    return out


def producer_for(settings: Settings, linger_ms: int = 50) -> Producer:
    """An idempotent lz4 producer with large batches, for writing a topic ahead of a run."""
    return Producer(
        {
            **settings.kafka.as_librdkafka_dict(),
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "batch.size": 1_000_000,
            "enable.idempotence": True,
            "acks": "all",
        }
    )


def publish(settings: Settings, topic: str, fragments: list[tuple[str, bytes]]) -> int:
    """Write fragments as per-partition envelopes of PER_MESSAGE events; returns messages."""
    producer = producer_for(settings)
    builder = envelope.BatchBuilder(PER_MESSAGE, 4 * 1024 * 1024)
    n = settings.topics.partitions
    sent = 0
    for key, fragment in fragments:
        p = partition_for(key.encode(), n)
        full = builder.add(p, fragment)
        if full:
            _produce(producer, topic, p, envelope.encode(full, None))
            sent += 1
    for p, rest in builder.drain().items():
        _produce(producer, topic, p, envelope.encode(rest, None))
        sent += 1
    producer.flush(120)
    return sent


def _produce(producer: Producer, topic: str, partition: int, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, partition=partition)
            return
        except BufferError:
            producer.poll(0.05)


def raw_consume(settings: Settings, topic: str, messages: int) -> Result:
    """Baseline: confluent-kafka consume + envelope decode of the same topic."""
    consumer = Consumer(
        {
            **settings.kafka.as_librdkafka_dict(),
            "group.id": f"b-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.topics.partitions)]
    )
    seen = events = 0
    started = time.perf_counter()
    while seen < messages:
        for msg in consumer.consume(1000, 1.0):
            if msg.error() is not None:
                continue
            events += len(envelope.decode(msg.value() or b"").events)
            seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return Result("raw confluent-kafka consume + decode", events / elapsed, "events/s", None)


def start_stage(settings: Settings, stage: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    if stage == "counts":  # the test-only reference stage is no `journeys process` stage
        return counts_stage(settings, log=log, **env)
    return journeys(settings, "process", stage, log=log, **env)


def committed_total(settings: Settings, group: str, topic: str, consumer: Consumer) -> int:
    tps = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
    return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10.0))


def end_total(settings: Settings, topic: str, consumer: Consumer) -> int:
    return sum(
        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1]
        for p in range(settings.topics.partitions)
    )


def _commits(
    proc: subprocess.Popen[bytes], stage: str, log: Path, committed: Callable[[], int], end: int
) -> Iterator[tuple[float, int]]:
    """(time, `committed()`) every 50 ms until that reaches `end`; raises if the stage exits
    first."""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{stage} exited {proc.returncode}: {log.read_text()[-2000:]}")
        done = committed()
        yield time.perf_counter(), done
        if done >= end:
            return
        time.sleep(0.05)


def stage_rate(
    settings: Settings,
    stage: str,
    topic: str,
    log: Path,
    name: str,
    *,
    then: Callable[[subprocess.Popen[bytes], float], None] | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run a stage over what `topic` holds; events/s between its first and last commit.
    `then(process, time of the first commit)` runs before the stage is stopped."""
    group = settings.topics.group(stage)
    probe = Consumer({**settings.kafka.as_librdkafka_dict(), "group.id": group})
    end = end_total(settings, topic, probe)
    proc = start_stage(settings, stage, log, **(env or {}))
    first: tuple[float, int] | None = None
    try:
        committed = partial(committed_total, settings, group, topic, probe)
        for now, done in _commits(proc, stage, log, committed, end):
            if done and first is None:
                first = (now, done)
        if then is not None and first is not None:
            then(proc, first[0])
    finally:
        terminate(proc)
        probe.close()
    assert first is not None
    elapsed = now - first[0]
    events = (end - first[1]) * PER_MESSAGE
    return Result(name, events / max(elapsed, 1e-9), "events/s", None)


def restart_with_state(settings: Settings, topic: str, log: Path) -> Result:
    """A counts worker restarted on state it built: seconds until it processes again."""
    group = settings.topics.group("counts")
    probe = Consumer({**settings.kafka.as_librdkafka_dict(), "group.id": group})
    publish(settings, topic, valid_fragments(PER_MESSAGE * settings.topics.partitions, 10, 0))
    end = end_total(settings, topic, probe)
    started = time.perf_counter()
    proc = start_stage(settings, "counts", log)
    try:
        committed = partial(committed_total, settings, group, topic, probe)
        for _now, _done in _commits(proc, "counts", log, committed, end):
            pass
        elapsed = time.perf_counter() - started
    finally:
        terminate(proc)
        probe.close()
    return Result("restart with 1M keys: until processing again", elapsed, "seconds", None)


def sink_rate(settings: Settings, fragments: list[tuple[str, bytes]]) -> list[Result]:
    """The sink on the stitched topic, beside one plain chDB insert of the same rows."""
    topics = Topics.from_settings(settings.topics)
    publish(settings, topics.stitched, fragments)
    body = b"[" + b",".join(f for _k, f in fragments) + b"]"
    with session(settings.clickhouse_dsn) as client:
        migrate(client)
        client.command("CREATE TABLE baseline AS touchpoints")
        started = time.perf_counter()
        client.raw_insert(
            "baseline", insert_block=body, fmt="JSONEachRow", settings=JSON_INSERT_SETTINGS
        )
        baseline = len(fragments) / (time.perf_counter() - started)
        sink = TopicSink(settings, client, {topics.stitched: "touchpoints"})
        started = time.perf_counter()
        # Stop as soon as every row is in: the figure includes the batching delay.
        stats = sink.run(lambda: sink.stats.rows >= len(fragments), idle_exit_seconds=60.0)
        elapsed = time.perf_counter() - started
        rows = client.query("SELECT count() FROM touchpoints").result_rows[0][0]
    assert rows == len(fragments), (rows, len(fragments), stats)
    return [
        Result("chDB: one JSONEachRow insert of all rows", baseline, "rows/s", None),
        Result("sink: Kafka -> chDB, batched, exactly once", rows / elapsed, "rows/s", baseline),
    ]
