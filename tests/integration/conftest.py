"""Fixtures for tests that run against the real local Kafka broker and chDB.

`make test` starts a broker instance of its own (`journeys broker run --instance test`) and
hands its address over in JOURNEYS_KAFKA__BOOTSTRAP_SERVERS. Run alone, `pytest` starts (and
stops) a broker itself. These tests never skip: no broker means a loud failure.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.kafka_admin import ensure_topics
from deploy.local.broker import LocalBroker
from schemas.settings import LocalBrokerSettings, Settings

from .helpers import reap

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    given = os.environ.get("JOURNEYS_KAFKA__BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    broker = LocalBroker(
        LocalBrokerSettings(instance="pytest", port=19492, controller_port=19493),
        ROOT / ".local",
    )
    started = broker.start()
    try:
        yield broker.bootstrap
    finally:
        if started:
            broker.stop()


@pytest.fixture
def settings(bootstrap: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own topics, groups, data folder and chDB."""
    run = uuid.uuid4().hex[:8]
    made = Settings(
        data_dir=tmp_path / "data",
        kafka={"bootstrap_servers": bootstrap},
        topics={"prefix": f"t{run}.", "partitions": 4},
        # Its sink serves the folder on any free port (found through the announcement).
        clickhouse={"dsn": f"chdb://{tmp_path / 'clickhouse'}", "http": {"port": 0}},
        # No wall-clock watermarks: tests replay fixed event times and close them with
        # heartbeats, so their outcomes must not depend on how long a step takes.
        processor={"worker_id": f"w{run}", "metrics_port": None, "idle_after_seconds": 0},
        log_format="text",
    )
    ensure_topics(made)
    return made


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever is still running at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        reap(proc)
