"""Collector benchmark: events/s through `POST /v1/batch` (100 calls per request, several
concurrent keep-alive clients), each request answered only after Kafka acknowledged its
events; beside the collector's pure core (request -> touchpoints, no I/O) on the same bodies.

With 1 and 2 collector worker processes (`journeys collector --workers N`), beside plain
produce() of the same run. Clients, collector and broker share this machine's two cores, so
the HTTP figure is a floor; beside it, events per CPU second of the collector's processes
(what a core of their own gives), with the load average, since other work on the machine
lowers the wall-clock figures.
Run alone: `journeys broker run --instance bench -- python -m tests.bench.collector`.
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from producers.collector.intake import Request
from producers.collector.server import build_intake
from schemas.settings import CollectorSettings, Settings
from tests.integration.helpers import (
    basic_auth,
    free_port,
    healthy,
    journeys,
    terminate,
    wait_for,
)

from . import pipeline, producer
from .report import Result, render

ROOT = Path(__file__).resolve().parents[2]
WRITE_KEY = "wk_bench"
SOURCES = {WRITE_KEY: {"name": "bench-web", "channel": "web"}}


def batch_bodies(events: int, per_request: int) -> list[bytes]:
    """Segment batches as analytics-python sends them: track and page calls, UUID messageIds."""
    base = datetime.now(UTC) - timedelta(hours=1)
    bodies = []
    for start in range(0, events, per_request):
        calls = []
        for i in range(start, min(start + per_request, events)):
            call = {
                "type": "track" if i % 4 else "page",
                "event": "Product Viewed",
                "messageId": str(uuid.UUID(int=i + 1, version=4)),
                "userId": f"user-{i % 5000}",
                "anonymousId": f"anon-{i % 9000}",
                "timestamp": (base + timedelta(milliseconds=i)).isoformat(),
                "properties": {
                    "sku": f"sku-{i % 300}",
                    "price": 19.99,
                    "currency": "EUR",
                    "path": f"/p/{i % 50}",
                    "product": {"brand": "acme", "size": "M"},
                },
                "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
            }
            calls.append(call)
        bodies.append(orjson.dumps({"batch": calls, "sentAt": datetime.now(UTC).isoformat()}))
    return bodies


def core_rate(settings: Settings, bodies: list[bytes], per_request: int) -> float:
    """The pure intake alone: decode, authenticate, map, validate, encode; per CPU second of
    this (single-threaded) process, so that other work on the machine does not lower it."""
    collector = CollectorSettings.model_validate(
        {"sources": SOURCES, "rate_limit_per_key_per_second": 1e9}
    )
    intake = build_intake(settings.model_copy(update={"collector": collector}))
    auth = basic_auth(WRITE_KEY)
    now = datetime.now(UTC)
    started = time.process_time()
    for body in bodies:
        outcome = intake.handle(Request("batch", "/v1/batch", body, auth), now, 0.0)
        assert outcome.status == 200, outcome.body
    return len(bodies) * per_request / (time.process_time() - started)


def http_rate(port: int, bodies: list[bytes], clients: int, per_request: int) -> float:
    """Concurrent keep-alive clients posting the bodies; every answer must be 200."""
    shares = [bodies[i::clients] for i in range(clients)]
    failures: list[str] = []
    threads = [threading.Thread(target=_client, args=(port, share, failures)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, failures[:3]
    return len(bodies) * per_request / elapsed


def _client(port: int, bodies: list[bytes], failures: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": basic_auth(WRITE_KEY), "Content-Type": "application/json"}
    try:
        for body in bodies:
            conn.request("POST", "/v1/batch", body, headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                failures.append(f"{response.status} {answer[:200]!r}")
    finally:
        conn.close()


def bench_collector(
    settings: Settings,
    log: Path,
    raw: float | None = None,
    *,
    events: int = 100_000,
    clients: int = 8,
    per_request: int = 100,
) -> list[Result]:
    """The pure core, then the collector over HTTP with 1 and 2 worker processes, each
    figure of acknowledged events beside `raw` (plain produce() in the same run) if given."""
    bodies = batch_bodies(events, per_request)
    core = core_rate(settings, bodies, per_request)
    results = [
        Result("collector core: batch -> touchpoints, no I/O, per CPU s", core, "events/s", None)
    ]
    for workers in (1, 2):
        results += _served(
            settings,
            log,
            bodies,
            workers=workers,
            clients=clients,
            per_request=per_request,
            baseline=raw or core,
        )
    return results


def _served(
    settings: Settings,
    log: Path,
    bodies: list[bytes],
    *,
    workers: int,
    clients: int,
    per_request: int,
    baseline: float,
) -> list[Result]:
    port = free_port()
    proc = journeys(
        settings,
        "collector",
        "--port",
        str(port),
        "--workers",
        str(workers),
        log=log,
        JOURNEYS_COLLECTOR__SOURCES=orjson.dumps(SOURCES).decode(),
        JOURNEYS_COLLECTOR__RATE_LIMIT_PER_KEY_PER_SECOND="1e9",
        JOURNEYS_COLLECTOR__ADMIN_PORT=str(free_port()),
    )
    try:
        wait_for(lambda: healthy(port), 60, "the collector's /health", [proc], log)
        http_rate(port, bodies[: len(bodies) // 10], clients, per_request)  # warm-up
        cpu_before = _cpu_seconds(proc.pid)
        rate = http_rate(port, bodies, clients, per_request)
        cpu = _cpu_seconds(proc.pid) - cpu_before
    finally:
        terminate(proc)
    load = os.getloadavg()[0]
    name = f"{workers} worker{'s' if workers > 1 else ''}"
    return [
        Result(
            f"collector HTTP /v1/batch, {name}: {per_request}/request, {clients} clients, acked",
            rate,
            "events/s",
            baseline,
            ">= 30,000 events/s" if workers == 1 else "",
        ),
        # The machine is shared: what the collector would do with a core of its own, read
        # from its CPU time, and the load beside it (wall-clock figures fall with the load).
        Result(
            f"collector HTTP, {name}, per CPU second of its processes (load {load:.1f})",
            len(bodies) * per_request / cpu if cpu > 0 else 0.0,
            "events/s",
            baseline,
        ),
    ]


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads, and of its worker processes
    (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = children.read_text().split() if children.exists() else []
    return own + sum(_cpu_seconds(int(child)) for child in pids)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="journeys-bench-") as tmp:
        settings = pipeline.bench_settings(Path(tmp))
        fragments = pipeline.valid_fragments(200_000, keys=20_000)
        raw = producer.bench_producers(settings, fragments)[0]
        results = [raw, *bench_collector(settings, Path(tmp) / "collector.log", raw.value)]
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
