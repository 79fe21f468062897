"""Wiring the collector from the settings and serving it (`journeys collector`).

The server is hypercorn's HTTP/1.1 protocol (h11) under a small accept loop of ours, because
uvicorn, served before, could not hold against hostile clients: it answers an oversized
header with 400 rather than 431, and nothing limits how long a client may take to send its
headers or body, so idle half-sent connections pile up until nobody else gets in. Here:

- headers past `max_header_bytes` get 431 (h11's limit on an incomplete request head);
- a connection with no whole request head within `idle_timeout_seconds` is closed, whether
  idle or trickling its headers (hypercorn's idle timer runs until a request head is in);
- a body not received within `request_timeout_seconds` gets 408 (`app`);
- past `max_connections` open connections, a new one gets 503 and is closed at once, with a
  warning in the log (at most one per 10 s, with the count refused);
- /health/live, /health/ready and /metrics answer on the admin listener (`admin`), which the
  cap does not count;
- SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight finish
  (up to `ack_timeout_seconds`), flush Kafka, exit 0;
- `workers` > 1: as many processes, each with its own producer, bind the same ports with
  SO_REUSEPORT (the kernel spreads connections over them); their metrics add up through
  prometheus_client's multiprocess mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import uvloop
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.utils import wrap_app

from producers.collector import metrics
from producers.collector.admin import AdminApp
from producers.collector.app import CollectorApp
from producers.collector.auth import Sources
from producers.collector.delivery import KafkaDelivery, metadata_probe
from producers.collector.intake import Intake
from producers.collector.protocol import Limits
from producers.collector.ratelimit import RateLimiter
from producers.collector.scrub import Scrubber
from producers.pii import PiiHasher
from producers.publisher import Publisher
from schemas.history import history_settings
from schemas.settings import CollectorSettings, Settings
from schemas.topics import Topics

log = logging.getLogger(__name__)

BACKLOG = 2048
ADMIN_CONNECTIONS = 64
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
    b"Content-Type: application/json\r\nContent-Length: 71\r\n\r\n"
    b'{"success":false,"code":"busy","message":"too many connections; retry"}'
)
_WARN_EVERY = 10.0
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def build_intake(settings: Settings) -> Intake:
    """The pure request logic, configured."""
    c = settings.collector
    return Intake(
        Sources.from_settings(c.sources),
        Limits(c.max_event_bytes, c.max_batch_bytes),
        RateLimiter(c.rate_limit_per_key_per_second, c.rate_limit_burst_seconds),
        Scrubber(PiiHasher(settings.pii)),
        settings.processor.future_tolerance,
        max_age=settings.processor.max_event_age,
    )


def build_app(settings: Settings) -> tuple[CollectorApp, KafkaDelivery]:
    """The ASGI app, publishing to this deployment's `raw` and ingest dead-letter topics, and
    its delivery (for the admin listener's probes)."""
    c = settings.collector
    topics = Topics.from_settings(settings.topics)
    producer_conf = {
        # A request waits for its acknowledgement: keep Kafka's own batching short, and let
        # librdkafka give up (and the request get 503) by the collector's deadline.
        "linger.ms": 5,
        "message.timeout.ms": int(c.ack_timeout_seconds * 1000),
    }
    publisher = Publisher(settings.kafka, topics.raw, settings.batch, producer_conf)
    delivery = KafkaDelivery(
        publisher,
        topics.dlq_ingest,
        settings.batch,
        c.linger_seconds,
        metadata_probe(settings.kafka, topics.raw),
        # `/v1/import` is history: its own topics and time (schemas/history.py).
        history_topic=Topics.from_settings(history_settings(settings).topics).raw,
    )
    app = CollectorApp(
        build_intake(settings),
        delivery,
        c.cors_origins,
        c.ack_timeout_seconds,
        request_timeout=c.request_timeout_seconds,
    )
    return app, delivery


def serve(settings: Settings, host: str, port: int, workers: int | None = None) -> int:
    """Serve until SIGINT or SIGTERM, then drain; the exit code (0 after a clean stop)."""
    c = settings.collector
    if not c.sources:
        log.warning(
            "collector: no sources configured (JOURNEYS_COLLECTOR__SOURCES): "
            "every tracking request will get 401"
        )
    count = c.workers if workers is None else workers
    _raise_open_files(c.max_connections)
    if count == 1:
        return run_worker(settings, host, port, shared=False)
    if port == 0 or c.admin_port == 0:
        log.error("collector: --workers needs fixed ports (--port and collector.admin_port)")
        return 2
    return _supervise(host, port, count)


def run_worker(settings: Settings, host: str, port: int, *, shared: bool) -> int:
    """One collector process; `shared`: it binds its ports beside its sibling workers."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            runner.run(_serve(settings, host, port, shared))
        except OSError as exc:  # a port taken or not ours: one line, no traceback
            log.error(
                "collector: cannot listen (--port, JOURNEYS_COLLECTOR__ADMIN_HOST/PORT): %s", exc
            )
            return 2
    return 0


async def _serve(settings: Settings, host: str, port: int, shared: bool) -> None:
    c = settings.collector
    app, delivery = build_app(settings)
    admin = AdminApp(delivery)
    config = hypercorn_config(c)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app.startup()
    ingest = Listener(app, config, c.max_connections, "ingestion")
    control = Listener(admin, config, ADMIN_CONNECTIONS, "admin")
    try:
        at = await ingest.start(_listen(host, port, shared))
        admin_at = await control.start(_listen(c.admin_host, c.admin_port, shared))
        log.info(
            "collector: listening on %s:%d, admin (/health/live, /health/ready, /metrics) on "
            "%s:%d, pid %d",
            host,
            at,
            c.admin_host,
            admin_at,
            os.getpid(),
        )
        await stop.wait()
        log.info("collector: stopping: draining requests in flight, then flushing Kafka")
        admin.draining = True
        await ingest.drain(c.ack_timeout_seconds)
    finally:
        await app.shutdown()
        await control.drain(1.0)
    log.info("collector: stopped")


def hypercorn_config(c: CollectorSettings) -> Config:
    config = Config()
    config.h11_max_incomplete_size = c.max_header_bytes
    config.h2_max_header_list_size = c.max_header_bytes
    config.keep_alive_timeout = c.idle_timeout_seconds
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


class Listener:
    """One listening socket served with hypercorn's HTTP protocol, at most `cap` connections
    at a time; past it a connection gets 503 and is closed."""

    def __init__(self, app: Any, config: Config, cap: int, name: str) -> None:
        self.app = wrap_app(app, config.wsgi_max_body_size, "asgi")
        self.config = config
        self.cap = cap
        self.name = name
        self.context = WorkerContext(None)
        self.open = 0
        self.refused = 0
        self._warned_at = -_WARN_EVERY
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> int:
        """Serve `sock`; the port it listens on."""
        self._server = await asyncio.start_server(self._connection, sock=sock, backlog=BACKLOG)
        return int(sock.getsockname()[1])

    async def drain(self, grace: float) -> None:
        """Stop accepting, close idle connections, give the others `grace` seconds."""
        if self._server is not None:
            self._server.close()
        await self.context.terminated.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open >= self.cap:
            self._refuse(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open += 1
        if self.name == "ingestion":
            metrics.CONNECTIONS.inc()
        try:
            loop = asyncio.get_running_loop()
            await TCPServer(self.app, loop, self.config, self.context, {}, reader, writer)
        finally:
            self.open -= 1
            if self.name == "ingestion":
                metrics.CONNECTIONS.dec()
            self._tasks.discard(task)

    def _refuse(self, writer: asyncio.StreamWriter) -> None:
        self.refused += 1
        metrics.REFUSED_CONNECTIONS.inc()
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(_BUSY)
        writer.close()
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "collector: %d connections open on the %s port, the limit "
                "(JOURNEYS_COLLECTOR__MAX_CONNECTIONS): new connections get 503 and are "
                "closed (%d so far)",
                self.open,
                self.name,
                self.refused,
            )


def _listen(host: str, port: int, shared: bool) -> socket.socket:
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def _raise_open_files(connections: int) -> None:
    """Each connection is a file: raise the soft limit to the hard one, and say if the cap
    still does not fit (accepting would then fail for every port, the admin one too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # an unlimited hard limit the kernel caps lower
            log.info("collector: open-file limit left at %d", soft)
    if hard != resource.RLIM_INFINITY and connections + 256 > hard:
        log.warning(
            "collector: max_connections %d is near the open-file limit %d: lower "
            "JOURNEYS_COLLECTOR__MAX_CONNECTIONS or raise the limit",
            connections,
            hard,
        )


def _supervise(host: str, port: int, count: int) -> int:
    """Start `count` worker processes on the same ports and stop them on SIGTERM/SIGINT; 0
    when each stopped cleanly, 1 when one died on its own (the others are then stopped)."""
    folder = tempfile.mkdtemp(prefix="journeys-collector-metrics-")
    env = {**os.environ, MULTIPROC_DIR: folder}
    command = [sys.executable, "-m", "deploy.cli", "collector", "--host", host]
    command += ["--port", str(port), "--worker"]
    procs = [subprocess.Popen(command, env=env) for _ in range(count)]
    log.info("collector: %d workers on port %d: pids %s", count, port, [p.pid for p in procs])
    stopping = False

    def forward(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        if not stopping:
            died = next(p for p in procs if p.returncode is not None)
            log.error("collector: worker %d exited with %s: stopping", died.pid, died.returncode)
            forward(signal.SIGTERM, None)
            stopping = False
        codes = [p.wait() for p in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if stopping and not any(codes) else 1
