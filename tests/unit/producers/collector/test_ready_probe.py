"""Readiness asks Kafka itself (producers/collector/delivery.py `metadata_probe`): with no
broker listening, /health/ready's probe says Kafka did not answer, within its timeout."""

from __future__ import annotations

import socket
import time

from producers.collector.delivery import metadata_probe
from schemas.settings import KafkaSettings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_broker_means_not_ready_with_the_reason() -> None:
    probe = metadata_probe(KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}"), "raw")
    started = time.monotonic()
    problem = probe(0.5)
    assert problem is not None and problem.startswith("Kafka did not answer"), problem
    assert time.monotonic() - started < 5.0
