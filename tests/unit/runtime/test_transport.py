"""stream_processors.runtime.transport: every stage's consumer reads only committed data, so a
worker killed mid-transaction never has its aborted outputs counted downstream."""

from __future__ import annotations

import asyncio
import gc
import inspect
import re
from pathlib import Path

import aiokafka
import pytest

from schemas.settings import Settings
from stream_processors.runtime.app import build_app
from stream_processors.runtime.transport import READ_COMMITTED, ReadCommittedConsumer
from stream_processors.stages import STAGES

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stages_consumer_reads_committed_data_only(stage: str, tmp_path: Path) -> None:
    # Nothing here connects: the consumer is made, not started.
    settings = Settings(data_dir=tmp_path, kafka={"bootstrap_servers": "127.0.0.1:1"})
    app = build_app(settings, stage)

    async def level() -> str:  # aiokafka makes consumers in a loop
        stage_consumer = app.consumer
        assert isinstance(stage_consumer, ReadCommittedConsumer)
        consumer = stage_consumer._new_consumer_thread()._create_worker_consumer(app.transport)
        try:
            return str(consumer._isolation_level)
        finally:
            await consumer.stop()

    try:
        assert asyncio.run(level()) == READ_COMMITTED
    finally:
        _close_idle_loops()


def _close_idle_loops() -> None:
    """faust makes event loops for a consumer it never starts here; close them now rather
    than leave their sockets to the garbage collector (a ResourceWarning in a later test)."""
    for found in gc.get_objects():
        idle = isinstance(found, asyncio.AbstractEventLoop) and not found.is_running()
        if idle and not found.is_closed():
            found.close()
    # ...which aiokafka hands to the fetcher it starts with (pinned to the version we run).
    assert "isolation_level=self._isolation_level" in inspect.getsource(
        aiokafka.AIOKafkaConsumer.start
    )


def test_stages_make_their_faust_app_only_through_build_app() -> None:
    made = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "stream_processors").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\b(faust\.App|StageApp)\(", line) and not line.startswith("class ")
    ]
    assert made == ["stream_processors/runtime/app.py:" + _line_of_stage_app()]


def _line_of_stage_app() -> str:
    source = (ROOT / "stream_processors/runtime/app.py").read_text().splitlines()
    return str(next(n for n, line in enumerate(source, start=1) if "StageApp(" in line))
