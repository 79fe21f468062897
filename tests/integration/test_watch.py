"""`journeys watch` on the real broker: a worker paused with SIGSTOP while its input grows
is reported stalled (log line, metric, /health 503), and healthy again once it resumes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from producers.files import publish_items
from producers.synthetic import generate
from schemas.settings import Settings

from .helpers import drain, journeys, stage_topics, stop, wait_for


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        # Closed here: left to the garbage collector, its socket warns in a later test.
        with error:
            return error.code, error.read()
    except OSError:
        return 0, b""


def _publish(settings: Settings, n: int, seed: int) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    items = generate(n, seed=seed, invalid_ratio=0, duplicate_ratio=0, persons=200, start=start)
    assert publish_items(settings, items) == n


def test_a_paused_worker_is_reported_stalled_then_healthy_again(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    log = tmp_path / "watch.log"
    group = settings.topics.group("ingest")
    ingest = journeys(settings, "process", "ingest", log=log)
    processes.append(ingest)
    _publish(settings, 2_000, seed=1)
    drain(settings, stage_topics(settings, "ingest"), [ingest], log, timeout=120, passes=1)

    port = _free_port()
    watch = journeys(
        settings,
        "watch",
        "--port",
        str(port),
        log=log,
        JOURNEYS_WATCH__GROUPS=json.dumps([group]),
        JOURNEYS_WATCH__STALL_AFTER_SECONDS="4",
        JOURNEYS_WATCH__POLL_SECONDS="0.5",
        JOURNEYS_LOG_LEVEL="INFO",
    )
    processes.append(watch)
    wait_for(lambda: _get(port, "/health")[0] == 200, 60, "a healthy watch", [watch], log)

    os.kill(ingest.pid, signal.SIGSTOP)
    try:
        _publish(settings, 2_000, seed=2)
        wait_for(lambda: _get(port, "/health")[0] == 503, 90, "the stall", [watch], log)
        body = json.loads(_get(port, "/health")[1])
        assert body["stalled"] == [group]
        (status,) = body["groups"]
        assert status["lag"] > 0 and status["stalled_for_seconds"] >= 4
        metrics = _get(port, "/metrics")[1].decode()
        assert f'journeys_watch_stalled{{group="{group}"}} 1.0' in metrics
    finally:
        os.kill(ingest.pid, signal.SIGCONT)
    wait_for(lambda: _get(port, "/health")[0] == 200, 120, "recovery", [watch, ingest], log)
    assert f"watch: {group} is stalled" in log.read_text()
    stop([watch, ingest], log)
    assert watch.returncode == 0
