"""The collector holds against hostile clients, on loopback against the real broker: an
oversized header gets 431, a request trickled in is cut off after its timeout (headers:
closed; body: 408), 5,000 idle half-sent connections do not stop the admin listener from
answering (and the cap past which new connections are refused is logged), the collector's
memory grows by at most 50 MB over all of it, its metrics count what Kafka acknowledged, and
SIGTERM drains and exits 0. Timeouts are set to about a second to keep this short."""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import time
from pathlib import Path

import orjson
import pytest

from schemas.settings import Settings
from tests.integration.helpers import (
    basic_auth,
    free_port,
    get,
    healthy,
    journeys,
    post,
    reap,
    start_collector,
    terminate,
    wait_for,
)
from tests.process_memory import memory_mb

pytestmark = pytest.mark.integration

KEY = "wk_hostile"
SOURCES = {KEY: {"name": "web-shop", "channel": "web"}}
IDLE, REQUEST = 1.0, 1.0
HEADERS = {"Authorization": basic_auth(KEY), "Content-Type": "application/json"}
IDLE_CONNECTIONS = 5_000
MAX_CONNECTIONS = 1_000
GIVE_UP = 30.0  # far beyond every timeout: only a collector that never cuts off waits this long


def test_the_collector_holds_against_hostile_clients(settings: Settings, tmp_path: Path) -> None:
    _raise_open_files(IDLE_CONNECTIONS + 200)
    port, admin, log = free_port(), free_port(), tmp_path / "collector.log"
    proc = start_collector(
        settings,
        port,
        SOURCES,
        log,
        JOURNEYS_LOG_LEVEL="INFO",
        JOURNEYS_COLLECTOR__ADMIN_PORT=str(admin),
        JOURNEYS_COLLECTOR__IDLE_TIMEOUT_SECONDS=str(IDLE),
        JOURNEYS_COLLECTOR__REQUEST_TIMEOUT_SECONDS=str(REQUEST),
        JOURNEYS_COLLECTOR__MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    )
    try:
        _send_valid(port, 20)  # warm: the memory measured next is the collector at work
        before = memory_mb(proc.pid)
        _oversized_header_gets_431(port)
        _trickled_headers_are_closed(port)
        _trickled_body_gets_408(port)
        _idle_connections_leave_the_admin_port_answering(port, admin)
        _send_valid(port, 20)  # and the port serves again once they are gone
        # The peak (VmHWM), not the end: memory freed once the connections are gone counts.
        grown = memory_mb(proc.pid, "VmHWM") - before
        assert grown <= 50, f"the collector grew by {grown:.0f} MB at its peak"
        _metrics_count_what_kafka_acknowledged(admin, events=40 * 10)
        assert terminate(proc, 60) == 0, log.read_text()[-3000:]
        assert "collector: stopped" in log.read_text()
    finally:
        reap(proc)
    text = log.read_text()
    assert re.search(r"connections open on the ingestion port, the limit", text), text[-3000:]


def _oversized_header_gets_431(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as sock:
        head = b"POST /v1/batch HTTP/1.1\r\nHost: collector\r\nX-Padding: "
        # The server answers long before the end, and closes: its answer is still in our
        # receive buffer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + b"a" * (4 * 1024 * 1024))
        assert _status(sock) == 431


def _trickled_headers_are_closed(port: int) -> None:
    """One byte every 0.2 s never completes a request head: the connection must be closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as sock:
        sock.sendall(b"POST /v1/batch HTTP/1.1\r\n")
        started = time.monotonic()
        sock.settimeout(0.2)
        while time.monotonic() - started < GIVE_UP:
            try:
                sock.sendall(b"X")
                if sock.recv(4096) == b"":
                    return
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return
        pytest.fail(f"a trickled request head was still open after {GIVE_UP:g} s")


def _trickled_body_gets_408(port: int) -> None:
    body = orjson.dumps({"batch": [_call(0)]})
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: collector\r\nAuthorization: {HEADERS['Authorization']}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as sock:
        sock.sendall(head.encode())
        sock.settimeout(0.2)  # one byte each 0.2 s: the whole body would take ~20 s
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                pytest.fail("a trickled body: closed without an answer")
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            return
        pytest.fail("a trickled body was never answered 408")


def _idle_connections_leave_the_admin_port_answering(port: int, admin: int) -> None:
    """5,000 connections that each sent half a request line: the admin listener answers
    live and ready throughout; past the cap new ones are refused (503), not queued."""
    idle: list[socket.socket] = []
    try:
        for n in range(IDLE_CONNECTIONS):
            if n % 1000 == 999:  # the admin listener answers all along
                assert get(admin, "/health/live")[0] == 200
            sock = socket.socket()
            sock.settimeout(GIVE_UP)
            sock.connect(("127.0.0.1", port))
            idle.append(sock)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused: the cap
                sock.send(b"POST /v1/batch HT")
        assert get(admin, "/health/live")[0] == 200
        # Ready asks the broker each time: a loaded machine may need a second try.
        wait_for(lambda: get(admin, "/health/ready")[0] == 200, GIVE_UP, "/health/ready")
        # Served, or refused at once while the cap is reached: never left waiting.
        assert _post_raw(port) in (200, 503)
    finally:
        for sock in idle:
            sock.close()


def _metrics_count_what_kafka_acknowledged(admin: int, events: int) -> None:
    status, text = get(admin, "/metrics")
    assert status == 200
    acked = re.search(rb'journeys_collector_acked_total\{kind="event"\} ([0-9.e+]+)', text)
    assert acked is not None and float(acked.group(1)) >= events, text[:2000]
    # The producer's own counter, which read 0 after thousands of events before.
    produced = re.search(rb"journeys_producer_events_acked_total ([0-9.e+]+)", text)
    assert produced is not None and float(produced.group(1)) >= events, text[:2000]
    refused = re.search(rb"journeys_collector_connections_refused_total ([0-9.e+]+)", text)
    assert refused is not None and float(refused.group(1)) > 0


def _send_valid(port: int, requests: int) -> None:
    """Requests of 10 valid calls each, retried while the collector frees its connections."""
    for n in range(requests):
        doc = {"batch": [_call(n * 10 + i) for i in range(10)]}
        deadline = time.monotonic() + GIVE_UP
        while True:
            try:
                status, answer = post(port, "/v1/batch", doc, HEADERS)
            except (ConnectionError, TimeoutError):
                status, answer = None, None
            if status == 200:
                assert answer["accepted"] == 10
                break
            assert time.monotonic() < deadline, f"the collector answered {status}: {answer}"
            time.sleep(0.2)


def _call(n: int) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": f"u-{n}",
        "messageId": f"hostile-{n}-{time.monotonic_ns()}",
    }


def _post_raw(port: int) -> int | None:
    body = orjson.dumps({"batch": [_call(-1)]})
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: c\r\nAuthorization: {HEADERS['Authorization']}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head.encode() + body)
        return _status(sock)


def _status(sock: socket.socket) -> int | None:
    data = b""
    while b"\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(match.group(1)) if match else None


def _raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def test_two_workers_serve_one_port_and_their_metrics_add_up(
    settings: Settings, tmp_path: Path
) -> None:
    """`--workers 2`: two processes, each with its own producer, on one port; every answer
    of /metrics (whichever worker gives it) counts every event either of them sent."""
    port, admin, log = free_port(), free_port(), tmp_path / "collector.log"
    proc = journeys(
        settings,
        "collector",
        "--port",
        str(port),
        "--workers",
        "2",
        log=log,
        JOURNEYS_LOG_LEVEL="INFO",
        JOURNEYS_COLLECTOR__ADMIN_PORT=str(admin),
        JOURNEYS_COLLECTOR__SOURCES=orjson.dumps(SOURCES).decode(),
    )
    try:
        wait_for(lambda: len(_worker_pids(log)) == 2, 60, "two workers listening", [proc], log)
        wait_for(lambda: healthy(port), 60, "the collector's /health", [proc], log)
        requests = 40
        _send_valid(port, requests)  # each on a connection of its own: the kernel spreads them
        totals = {_acked(admin) for _ in range(10)}
        assert totals == {requests * 10.0}, totals
        assert terminate(proc, 60) == 0, log.read_text()[-3000:]
        assert log.read_text().count("collector: stopped") == 2
    finally:
        reap(proc)


def _worker_pids(log: Path) -> set[str]:
    return set(re.findall(r"/metrics\) on \S+, pid (\d+)", log.read_text()))


def _acked(admin: int) -> float:
    status, text = get(admin, "/metrics")
    acked = re.search(rb'journeys_collector_acked_total\{kind="event"\} ([0-9.e+]+)', text)
    assert status == 200 and acked is not None, text[:2000]
    return float(acked.group(1))
