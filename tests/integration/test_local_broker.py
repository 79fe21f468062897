"""The project-local broker's lifecycle, on a real Kafka process of its own."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from deploy.local.broker import BrokerError, LocalBroker, _is_alive
from schemas.settings import LocalBrokerSettings

from .helpers import ROOT

PORT = 19592


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    made = LocalBroker(
        LocalBrokerSettings(
            instance=f"life-{uuid.uuid4().hex[:6]}",
            port=PORT,
            controller_port=PORT + 1,
            heap="256m",
            start_timeout_seconds=60,
        ),
        ROOT / ".local",  # shares the jar cache; the instance folder is its own
    )
    yield made
    made.stop()
    made.wipe()


def test_start_is_idempotent_and_stop_ends_the_process(broker: LocalBroker) -> None:
    assert broker.start() is True
    pid = broker.running_pid()
    assert pid is not None and _is_alive(pid)
    assert broker.start() is False
    assert broker.running_pid() == pid
    assert broker.stop() is True
    assert not _is_alive(pid)
    assert broker.running_pid() is None
    assert broker.stop() is False


def test_a_stale_pid_file_is_not_mistaken_for_a_broker(broker: LocalBroker) -> None:
    broker.root.mkdir(parents=True, exist_ok=True)
    broker.pid_file.write_text(str(os.getpid()))  # alive, but not this instance's Kafka
    assert broker.running_pid() is None
    assert not broker.pid_file.exists()
    broker.pid_file.write_text("not a pid")
    assert broker.running_pid() is None


def test_a_broker_that_cannot_start_fails_with_its_log(broker: LocalBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", PORT))
        taken.listen()
        with pytest.raises(BrokerError) as failure:
            broker.start()
    assert "Kafka broker" in str(failure.value)
    assert broker.running_pid() is None
