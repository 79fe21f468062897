"""A ClickHouse folder holding what the real stages make of a simulated day, for the page's
tests: the four stages run without Kafka (`tests/unit/sinks/test_row_columns.py`'s in-memory
bus) on a day with a checkout incident, and every row goes in through the sink's own insert
(`insert_json_rows`, the tables of `sinks.tables`), as `journeys sink` writes them."""

from __future__ import annotations

from pathlib import Path

import orjson
from clickhouse_connect.driver.client import Client

from schemas.settings import SHIPPED_DEFINITIONS
from sinks.clickhouse import insert_json_rows, migrate
from sinks.definitions import record_definitions
from tests.unit.sinks.test_row_columns import START, Pipeline, raw_messages

# The simulated day, and the span the tests ask the page about.
DAY = START


def fill(client: Client) -> dict[str, int]:
    """Migrate the database `client` opens and write the simulated day into it; rows per
    table."""
    migrate(client)
    record_definitions(client, sorted(Path(SHIPPED_DEFINITIONS).glob("*.toml")))
    pipeline = Pipeline()
    pipeline.run(raw_messages())
    written = {}
    for table, rows in sorted(pipeline.rows().items()):
        written[table] = insert_json_rows(client, table, orjson.dumps(rows), f"ui-{table}")
    return written
