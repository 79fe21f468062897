"""`migrate` gives a database made without column comments (as versions before them made it)
every comment, on tables and views, and a second run changes nothing. Embedded engine."""

from __future__ import annotations

import re
from pathlib import Path

from clickhouse_connect.driver.client import Client

from sinks.clickhouse import migrate, session
from sinks.tables import column_comments, comment_changes, ddl

# A column's or a table's COMMENT clause, as the dialect and the view statements write it.
COMMENT = re.compile(r"\s+COMMENT '(?:[^'\\]|''|\\.)*'")


def comments(client: Client) -> dict[str, dict[str, str]]:
    rows = client.query(
        "SELECT table, name, comment FROM system.columns WHERE database = currentDatabase()"
    ).result_rows
    found: dict[str, dict[str, str]] = {}
    for table, name, comment in rows:
        found.setdefault(table, {})[name] = comment
    return found


def test_migrate_brings_comments_to_a_database_made_without_them(tmp_path: Path) -> None:
    with session(f"chdb://{tmp_path / 'ch'}") as ch:
        for statement in ddl():
            ch.command(COMMENT.sub("", statement))
        before = comments(ch)
        assert {c for columns in before.values() for c in columns.values()} == {""}

        applied = migrate(ch)
        after = comments(ch)
        for table, wanted in column_comments().items():
            assert {c: wanted[c] for c in after[table]} == after[table], table
        assert comment_changes(after) == []
        # Again: only the views are made again (and so commented again).
        assert migrate(ch) < applied
        assert comments(ch) == after


def test_only_differing_comments_are_changed() -> None:
    wanted = column_comments()["dropoffs"]
    existing = {"dropoffs": {**wanted, "stage_channel": "", "retracted": "old words"}}
    existing["unknown_table"] = {"x": ""}
    (statement,) = [s for s in comment_changes(existing) if "`dropoffs`" in s]
    assert statement.startswith("ALTER TABLE `dropoffs` COMMENT COLUMN `stage_channel` '")
    assert ", COMMENT COLUMN `retracted` '" in statement
    assert statement.count("COMMENT COLUMN") == 2
    assert not any("unknown_table" in s for s in comment_changes(existing))
