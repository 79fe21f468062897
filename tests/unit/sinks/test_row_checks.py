"""The stage-fed tables refuse a row of defaults (what JSONEachRow makes of a record that is
not a row of the table), so the sink dead-letters it instead of storing it; real rows pass.
Embedded engine, through `migrate` as a deployment gets the checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from sinks.clickhouse import migrate, session
from sinks.constraints import ROW_CHECKS
from sinks.core.failures import classify
from sinks.tables import metadata


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("checks") / "ch"
    with session(f"chdb://{path}") as client:
        migrate(client)
        yield client


def insert(ch: Client, table: str, row: dict[str, object]) -> None:
    ch.command(f"INSERT INTO `{table}` FORMAT JSONEachRow {orjson.dumps(row).decode()}")


@pytest.mark.parametrize("table", sorted(ROW_CHECKS))
def test_a_record_that_is_not_a_row_is_refused_as_no_retry_can_fix(ch: Client, table: str) -> None:
    before = ch.query(f"SELECT count() FROM `{table}`").result_rows[0][0]
    with pytest.raises(DatabaseError) as refused:
        insert(ch, table, {"not": "a row"})
    assert "469" in str(refused.value)
    failure = classify(469, str(refused.value))
    assert not failure.transient  # the sink dead-letters it rather than retrying forever
    assert ch.query(f"SELECT count() FROM `{table}`").result_rows[0][0] == before


def test_a_touchpoint_with_its_fields_is_stored(ch: Client) -> None:
    insert(
        ch,
        "touchpoints",
        {
            "event_id": "6f1b1c4e-7d0a-4c1e-9a55-3b7d8e2f9a10",
            "channel": "web",
            "source": "web-shop",
            "event_type": "page_view",
            "occurred_at": "2026-12-01 10:00:00.000",
        },
    )
    assert ch.query("SELECT count() FROM touchpoints").result_rows[0][0] == 1


def test_checks_name_columns_their_tables_have_and_migrate_twice_is_harmless(ch: Client) -> None:
    for table, (_name, expression) in ROW_CHECKS.items():
        assert table in metadata.tables
        named = {c.name for c in metadata.tables[table].columns}
        used = {word for word in expression.replace("(", " ").split() if word in named}
        assert used, table
    migrate(ch)  # ADD CONSTRAINT IF NOT EXISTS: nothing fails, nothing doubles
    create = ch.query("SHOW CREATE TABLE touchpoints").result_rows[0][0]
    assert create.count("CONSTRAINT usable_touchpoint") == 1
