"""Small waiting and reading helpers shared by the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from deploy.kafka_admin import committed_offsets
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    watch: list[subprocess.Popen[bytes]] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `condition` until true; fail with `what` (and a log tail) on timeout or if a
    watched process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for proc in watch or []:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{proc.args!r} exited {proc.returncode} while waiting for {what}\n{tail(log)}"
                )
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail(log)}")


def tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def committed(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """Committed offsets of a group per partition (negative where none)."""
    return committed_offsets(settings, group, topic)


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer({**settings.kafka.as_librdkafka_dict(), "group.id": "x"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1]
            for p in range(settings.topics.partitions)
        }
    finally:
        consumer.close()


def read_all(settings: Settings, topic: str) -> list[tuple[Any, bytes | None]]:
    """Every committed record of a topic, from the beginning: (key, value)."""
    consumer = Consumer(
        {
            **settings.kafka.as_librdkafka_dict(),
            "group.id": f"test-read-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    out: list[tuple[Any, bytes | None]] = []
    try:
        parts = list(consumer.list_topics(topic, timeout=10.0).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        pending = set(parts)
        while pending:
            for msg in consumer.consume(10_000, 1.0):
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    pending.discard(msg.partition())
                    continue
                out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def dead_letters(settings: Settings, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _k, v in read_all(settings, topic) if v is not None]


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment that makes a `journeys` subprocess use exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env.update(
        {
            "JOURNEYS_DATA_DIR": str(settings.data_dir),
            "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "JOURNEYS_TOPICS__PREFIX": settings.topics.prefix,
            "JOURNEYS_TOPICS__PARTITIONS": str(settings.topics.partitions),
            "JOURNEYS_CLICKHOUSE__DSN": settings.clickhouse_dsn,
            "JOURNEYS_PROCESSOR__WORKER_ID": settings.processor.worker_id,
            "JOURNEYS_PROCESSOR__METRICS_PORT": "0",
            "JOURNEYS_LOG_FORMAT": "text",
            "JOURNEYS_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def journeys(settings: Settings, *args: str, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """Start `journeys ARGS...` as a separate process (so it can be killed for real)."""
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", *args],
            env=env_for(settings, **extra),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
