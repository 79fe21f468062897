"""Test-only stages, run as processes on the real broker by the integration tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream_processors.runtime.worker import StageBuild


def run_test_stage(stage: str, table: str, build: StageBuild) -> None:
    """Run a test-only stage as `journeys process` runs one: logs configured, its topics
    ensured with its one state table, then the worker until it is stopped."""
    from deploy import logs
    from deploy.kafka_admin import ensure_topics
    from schemas.settings import load_settings
    from stream_processors.runtime.worker import run

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    ensure_topics(settings, stateful={stage: (table,)})
    run(settings, stage, build)
