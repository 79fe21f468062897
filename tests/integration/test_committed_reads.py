"""A stage worker SIGKILLed in the middle of a Kafka transaction leaves an aborted transaction
on its output topic, which its restarted incarnation redoes. Every stage downstream must read
committed data only, or it counts both: each event must reach ClickHouse exactly once."""

from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from producers.files import publish_items
from producers.synthetic import generate
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import session

from .helpers import drain, journeys, stage_topics, stop

EVENTS = 20_000


def test_a_worker_killed_mid_transaction_leaves_every_event_once_downstream(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    topics = Topics.from_settings(settings.topics)
    items = list(
        generate(
            EVENTS,
            seed=5,
            invalid_ratio=0.0,
            duplicate_ratio=0.0,
            persons=1_500,
            start=datetime.now(UTC) - timedelta(days=1),
        )
    )
    event_ids = {i.event_id for i in items}
    assert len(event_ids) == EVENTS
    log = tmp_path / "pipeline.log"
    identity = journeys(settings, "process", "identity", log=log)
    sink = journeys(settings, "sink", log=log)
    processes += [identity, sink]
    assert publish_items(settings, items) == EVENTS

    # Its first transaction's records reach the broker, then the worker dies before
    # committing it; the restarted worker fences it (Kafka aborts it) and redoes the work.
    dying = journeys(
        settings,
        "process",
        "ingest",
        log=log,
        JOURNEYS_PROCESSOR__COMMIT_INTERVAL_SECONDS="0.3",
        JOURNEYS_FAULTS__STAGE_KILL_IN_TRANSACTION="0",
    )
    processes.append(dying)
    assert dying.wait(timeout=120) == -signal.SIGKILL, log.read_text()[-3000:]
    ingest = journeys(settings, "process", "ingest", log=log)
    processes.append(ingest)

    watch = [ingest, identity, sink]
    sink_topics = [topics.stitched, topics.identity_links, topics.identity_map]
    drain(
        settings,
        {**stage_topics(settings, "ingest", "identity"), "sink": sink_topics},
        watch,
        log,
        timeout=180,
        passes=1,
    )
    stop(watch, log)

    with session(settings.clickhouse_dsn) as ch:
        rows, distinct = ch.query(
            "SELECT count(), uniqExact(event_id) FROM touchpoints"
        ).result_rows[0]
        final = ch.query("SELECT count() FROM touchpoints FINAL").result_rows[0][0]
        stored = {
            str(r[0]) for r in ch.query("SELECT DISTINCT event_id FROM touchpoints").result_rows
        }
    assert (rows, distinct, final) == (EVENTS, EVENTS, EVENTS)
    assert stored == event_ids
