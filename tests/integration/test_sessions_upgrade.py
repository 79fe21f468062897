"""Open sessions in ClickHouse (real engine, chDB): a `sessions` table the previous version
made (closed sessions only, no version in its engine) is brought forward by `migrate`, its
rows read as closed, and a session's rows inserted in order end at its latest; a table made
by this version keeps the highest version whatever the order of insertion."""

from __future__ import annotations

from pathlib import Path

import orjson
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import insert_json_rows, migrate, session
from sinks.tables import sessions

PREVIOUS = (
    "CREATE TABLE sessions (`session_id` String, `person_id` String, "
    "`channel` LowCardinality(String), `started_at` DateTime64(3, 'UTC'), "
    "`ended_at` DateTime64(3, 'UTC'), `events` UInt32, `friction` UInt32, "
    "`task_completed` Bool, `first_touchpoint` Nullable(String), "
    "`last_touchpoint` Nullable(String)) Engine ReplacingMergeTree ORDER BY (channel, "
    "session_id) SETTINGS non_replicated_deduplication_window = 10000"
)


def _row(session_id: str, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "session_id": session_id,
        "person_id": "p1",
        "channel": "store",
        "started_at": 1740823200.0,
        "ended_at": 1740823200.0,
        "events": 1,
        "friction": 0,
        "task_completed": False,
        "first_touchpoint": "store:042",
        "last_touchpoint": "store:042",
    }
    return row | extra


def _latest(ch: Client) -> dict[str, tuple[str, int]]:
    found = ch.query("SELECT session_id, status, events FROM sessions FINAL").result_rows
    return {sid: (status, events) for sid, status, events in found}


def test_migrate_brings_the_previous_sessions_table_forward(tmp_path: Path) -> None:
    with session(f"chdb://{tmp_path / 'ch'}") as ch:
        ch.command(PREVIOUS)
        insert_json_rows(ch, "sessions", orjson.dumps([_row("before")]), "old")
        migrate(ch)
        names = [
            name
            for (name,) in ch.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() "
                "AND table = 'sessions' ORDER BY position"
            ).result_rows
        ]
        assert names == [c.name for c in sessions.columns]
        rows = [
            _row("s", status="open", version=1),
            _row("s", status="open", version=2, events=3),
            _row("s", status="closed", version=3, events=4),
        ]
        for n, row in enumerate(rows):  # as the sink inserts one partition: in order
            insert_json_rows(ch, "sessions", orjson.dumps([row]), f"new-{n}")
        assert _latest(ch) == {"before": ("closed", 1), "s": ("closed", 4)}


def test_a_new_sessions_table_keeps_the_latest_version(tmp_path: Path) -> None:
    with session(f"chdb://{tmp_path / 'ch'}") as ch:
        migrate(ch)
        closed = _row("s", status="closed", version=2, events=4)
        insert_json_rows(ch, "sessions", orjson.dumps([closed]), "a")
        late_open = _row("s", status="open", version=1, events=2)
        insert_json_rows(ch, "sessions", orjson.dumps([late_open]), "b")
        assert _latest(ch) == {"s": ("closed", 4)}
