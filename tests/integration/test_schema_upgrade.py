"""A database an older version made is brought up to date by `migrate`: the column this
version added to `dropoffs` (`signals`) appears in its place, rows written before read it
empty, new rows carry it, and the view over the table shows it (a view fixes its columns
when it is made, so migrate makes it again). Real ClickHouse engine (chDB)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import insert_json_rows, migrate, session
from sinks.tables import ddl, dropoffs


def _older_dropoffs() -> tuple[str, str]:
    """`dropoffs` and its view as the version before `signals` made them."""
    (table,) = [s for s in ddl() if re.search(r"TABLE IF NOT EXISTS `?dropoffs`? ", s)]
    older = re.sub(r"\s*`signals` Array\(String\)( COMMENT '([^']|'')*')?,", "", table)
    assert older != table
    view = "CREATE VIEW dropoffs_standing AS SELECT * FROM dropoffs FINAL WHERE NOT retracted"
    return older, view


def _row(dropoff_id: str, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "dropoff_id": dropoff_id,
        "journey_id": "j-" + dropoff_id,
        "definition_id": "purchase",
        "definition_version": 1,
        "person_id": "p1",
        "stage": "cart",
        "stage_entered_at": "2025-03-01 10:00:00.000",
        "dropped_at": "2025-03-01 11:00:00.000",
        "reason": "time_limit",
        "last_channel": "web",
        "channels": ["web"],
        "version": 1,
        "retracted": False,
    }
    return row | extra


def _columns(ch: Client, table: str) -> list[str]:
    rows = ch.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() "
        f"AND table = '{table}' ORDER BY position"
    ).result_rows
    return [name for (name,) in rows]


def test_migrate_adds_the_columns_an_older_version_lacked(tmp_path: Path) -> None:
    names = [c.name for c in dropoffs.columns]
    assert set(_row("x")) <= set(names)
    with session(f"chdb://{tmp_path / 'ch'}") as ch:
        older, view = _older_dropoffs()
        ch.command(older)
        ch.command(view)
        insert_json_rows(ch, "dropoffs", orjson.dumps([_row("before")]), "old")
        assert "signals" not in _columns(ch, "dropoffs")

        first = migrate(ch)
        assert _columns(ch, "dropoffs") == names  # in this version's order
        assert _columns(ch, "dropoffs_standing") == names
        assert migrate(ch) == first - 1  # nothing left to add

        new = _row("after", signals=["payment_declined@web:/checkout"])
        insert_json_rows(ch, "dropoffs", orjson.dumps([new]), "new")
        stored: dict[str, list[str]] = {
            dropoff_id: signals
            for dropoff_id, signals in ch.query(
                "SELECT dropoff_id, signals FROM dropoffs_standing ORDER BY dropoff_id"
            ).result_rows
        }
    assert stored == {"after": ["payment_declined@web:/checkout"], "before": []}
