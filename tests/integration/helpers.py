"""Small waiting and reading helpers shared by the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from deploy.kafka_admin import committed_offsets
from schemas.settings import Settings
from stream_processors.runtime.topic_reader import read_to_end

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
    """Log end offsets (not the last stable offset: an open transaction does not hide them)."""
    consumer = Consumer(
        {
            **settings.kafka.as_librdkafka_dict(),
            "group.id": "x",
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1]
            for p in range(settings.topics.partitions)
        }
    finally:
        consumer.close()


def read_all(settings: Settings, topic: str) -> list[tuple[Any, bytes | None]]:
    """Every committed record of a topic, from the beginning: (key, value)."""
    return [(m.key(), m.value()) for m in read_to_end(settings.kafka, topic)]


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
            "JOURNEYS_PROCESSOR__IDLE_AFTER_SECONDS": str(settings.processor.idle_after_seconds),
            "JOURNEYS_LOG_FORMAT": "text",
            "JOURNEYS_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def journeys(settings: Settings, *args: str, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """Start `journeys ARGS...` as a separate process (so it can be killed for real)."""
    return python_module(settings, "deploy.cli", *args, log=log, **extra)


def counts_stage(settings: Settings, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """Start the test-only counts stage (`tests.stages.counts`) as a worker process."""
    return python_module(settings, "tests.stages.counts", log=log, **extra)


def python_module(
    settings: Settings, module: str, *args: str, log: Path, **extra: str
) -> subprocess.Popen[bytes]:
    """Start `python -m MODULE ARGS...` with these settings, its output appended to `log`."""
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env_for(settings, **extra),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
