"""The walking skeleton end to end on the real broker and chDB: producer -> raw -> ingest
(faust) -> touchpoints -> sink -> ClickHouse, with bad input, repeated ids and a sink that
dies between an insert and its offset commit."""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from producers.files import publish_items
from producers.synthetic import Kind, generate
from schemas.deadletter import Reason
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import reader_dsn, session
from sinks.runner import EXIT_FAULT_INJECTED

from .helpers import dead_letters, drain, journeys, stage_topics, stop, wait_for

EXPECTED_REASON: dict[Kind, Reason] = {
    "malformed_json": "malformed_json",
    "not_object": "not_an_object",
    "invalid_field": "invalid_field",
    "no_identity": "invalid_field",
    "future": "future_timestamp",
}


@pytest.mark.parametrize("served", [False, True], ids=["embedded", "through-db-serve"])
def test_exactly_once_into_clickhouse_with_dead_letters_and_a_sink_crash(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path, served: bool
) -> None:
    """`through-db-serve`: `journeys db serve` holds the folder, so the sinks write through
    its HTTP interface (inserts with their deduplication tokens, a crash between an insert
    and its commit included), as they would to a ClickHouse server. A sink that opened the
    folder itself would fail: chDB lets one process hold it."""
    topics = Topics.from_settings(settings.topics)
    server = None
    if served:
        server = journeys(settings, "db", "serve", log=tmp_path / "serve.log")
        processes.append(server)
        dsn = settings.clickhouse_dsn
        wait_for(lambda: reader_dsn(dsn) != dsn, 60, "db serve", [server], tmp_path / "serve.log")
    items = list(
        generate(
            12_000,
            seed=11,
            invalid_ratio=0.02,
            duplicate_ratio=0.02,
            persons=800,
            start=datetime.now(UTC) - timedelta(days=1),
        )
    )
    kinds = Counter(i.kind for i in items)
    assert kinds["duplicate"] >= 120 and sum(kinds[k] for k in EXPECTED_REASON) >= 120
    assert all(kinds[k] > 0 for k in EXPECTED_REASON)
    valid_ids = {i.event_id for i in items if i.kind == "valid"}

    assert publish_items(settings, items) == len(items)

    log = tmp_path / "pipeline.log"
    ingest = journeys(settings, "process", "ingest", log=log)
    processes.append(ingest)
    drain(settings, stage_topics(settings, "ingest"), [ingest], log, timeout=120, passes=1)
    identity = journeys(settings, "process", "identity", log=log)
    processes.append(identity)
    drain(settings, {"identity": [topics.touchpoints]}, [identity], log, timeout=120, passes=1)

    crashing = journeys(
        settings,
        "sink",
        "--idle-exit",
        "20",
        log=log,
        JOURNEYS_FAULTS__SINK_EXIT_AFTER_INSERTS="2",
    )
    processes.append(crashing)
    assert crashing.wait(timeout=120) == EXIT_FAULT_INJECTED

    sink = journeys(settings, "sink", "--idle-exit", "4", log=log)
    processes.append(sink)
    assert sink.wait(timeout=180) == 0, log.read_text()[-3000:]
    stop([ingest, identity], log)
    if server is not None:
        stop([server], tmp_path / "serve.log")

    with session(settings.clickhouse_dsn) as ch:
        plain = ch.query("SELECT count() FROM touchpoints").result_rows[0][0]
        final = ch.query("SELECT count() FROM touchpoints FINAL").result_rows[0][0]
        stored = {str(r[0]) for r in ch.query("SELECT event_id FROM touchpoints").result_rows}
        channels: dict[str, int] = {
            channel: n
            for channel, n in ch.query(
                "SELECT channel, count() FROM touchpoints GROUP BY channel"
            ).result_rows
        }
    assert plain == final == len(valid_ids)
    assert stored == valid_ids
    assert set(channels) == {"web", "app", "call_center", "store"}

    dlq = dead_letters(settings, topics.dlq_ingest)
    got = Counter(d["reason"] for d in dlq)
    want = Counter(EXPECTED_REASON[i.kind] for i in items if i.kind in EXPECTED_REASON)
    assert got == want
    assert all(d["raw"] and d["stage"] == "ingest" for d in dlq)
    invalid_field = [d for d in dlq if d["reason"] == "invalid_field"]
    assert all(d["errors"] and d["errors"][0]["field"] for d in invalid_field)

    duplicates_dropped = kinds["duplicate"]
    assert len(valid_ids) + duplicates_dropped + len(dlq) == len(items)
