"""Waiting, reading, starting and stopping helpers shared by the integration tests and the
benchmarks."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from deploy.kafka_admin import committed_offsets, group_drained
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.runner import pipeline_routes
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
            # A sink serves its folder on any free port (the announcement says which).
            "JOURNEYS_CLICKHOUSE__HTTP__PORT": str(settings.clickhouse.http.port),
            "JOURNEYS_PROCESSOR__WORKER_ID": settings.processor.worker_id or "worker",
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


# -- processes ----------------------------------------------------------------------------


def terminate(proc: subprocess.Popen[Any], timeout: float = 60.0) -> int:
    """SIGTERM, then the exit code; a process still running after `timeout` is killed (so
    nothing is left behind) and the timeout raised."""
    proc.terminate()
    return _exit_code(proc, timeout)


def stop(procs: Sequence[subprocess.Popen[Any]], log: Path, timeout: float = 60.0) -> None:
    """SIGTERM to every process at once, then each must exit 0 (else fail with the log)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        assert _exit_code(proc, timeout) == 0, log.read_text()[-3000:]


def _exit_code(proc: subprocess.Popen[Any], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        reap(proc)
        raise


def reap(proc: subprocess.Popen[Any]) -> None:
    """Kill the process if it still runs, and wait for it: nothing is left behind."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def kill(proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """SIGKILL, as a crash would: the process must die of it."""
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout) == -signal.SIGKILL


# -- consumer groups ----------------------------------------------------------------------


def stage_topics(settings: Settings, *stages: str) -> dict[str, list[str]]:
    """What each of `stages` (its consumer group) reads, in the order given."""
    t = Topics.from_settings(settings.topics)
    reads = {
        "ingest": [t.raw],
        "identity": [t.touchpoints, t.identity_links],
        "journeys": [t.stitched, t.identity_merges, t.journey_handoff],
        "friction": [t.stitched, t.journey_transitions, t.journey_dropoffs, t.friction_partials],
        "sink": sorted(pipeline_routes(t)),
    }
    return {stage: reads[stage] for stage in stages}


def drain(
    settings: Settings,
    stages: Mapping[str, Sequence[str]],
    watch: list[subprocess.Popen[bytes]],
    log: Path,
    *,
    timeout: float = 240.0,
    passes: int = 2,
) -> None:
    """Wait until each stage's group has committed everything on its topics, stage after
    stage; `passes` times over, for topics written by the stage that reads them."""
    for _ in range(passes):
        for stage, topics in stages.items():
            drained = partial(group_drained, settings, settings.topics.group(stage), list(topics))
            wait_for(drained, timeout, f"{stage} to drain", watch, log)


def committed_some(settings: Settings, group: str, topic: str) -> bool:
    """Has `group` committed any offset of `topic`?"""
    return sum(max(o, 0) for o in committed_offsets(settings, group, topic).values()) > 0


def uncommitted_input(settings: Settings, group: str, topic: str) -> bool:
    """Is more than a commit marker left on some partition: records `group` has not
    committed yet (a stage killed now is killed mid-stream)?"""
    ends = end_offsets(settings, topic)
    done = committed_offsets(settings, group, topic)
    return any(end - max(done.get(p, 0), 0) > 1 for p, end in ends.items())


# -- the HTTP collector -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def basic_auth(write_key: str) -> str:
    """The Authorization header Segment's SDKs send for a write key."""
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post(port: int, path: str, doc: Any, headers: dict[str, str]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, orjson.dumps(doc), headers)
        response = conn.getresponse()
        return response.status, orjson.loads(response.read())
    finally:
        conn.close()


def healthy(port: int) -> bool:
    try:
        return get(port, "/health")[0] == 200
    except OSError:
        return False


def start_collector(
    settings: Settings, port: int, sources: Mapping[str, Any], log: Path, **extra: str
) -> subprocess.Popen[bytes]:
    """`journeys collector` on `port` with these write keys, healthy when this returns; its
    admin listener on a free port unless `JOURNEYS_COLLECTOR__ADMIN_PORT` is given."""
    extra.setdefault("JOURNEYS_COLLECTOR__ADMIN_PORT", str(free_port()))
    proc = journeys(
        settings,
        "collector",
        "--port",
        str(port),
        log=log,
        JOURNEYS_COLLECTOR__SOURCES=orjson.dumps(sources).decode(),
        **extra,
    )
    try:
        wait_for(lambda: healthy(port), 60, "the collector's /health", [proc], log)
    except BaseException:
        reap(proc)
        raise
    return proc
