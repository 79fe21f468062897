"""sinks.views on the embedded engine: each view keeps its table's column names, so analysts
join views to tables by those names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import migrate, session
from sinks.tables import metadata

# A view and the table whose every column it must expose under the same name.
VIEW_OVER = {
    "touchpoints_latest": "touchpoints",
    "journeys_latest": "journeys",
    "dropoffs_standing": "dropoffs",
}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("views") / "clickhouse"
    with session(f"chdb://{path}") as client:
        migrate(client)
        yield client


def columns(client: Client, table: str) -> list[str]:
    rows = client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
        parameters={"t": table},
    ).result_rows
    return [name for (name,) in rows]


@pytest.mark.parametrize(("view", "table"), sorted(VIEW_OVER.items()))
def test_view_exposes_every_column_of_its_table_by_its_name(
    migrated: Client, view: str, table: str
) -> None:
    have = columns(migrated, view)
    assert [name for name in have if "." in name] == []
    assert set(metadata.tables[table].columns.keys()) <= set(have)


def test_dropoffs_join_to_journeys_latest_by_journey_id(migrated: Client) -> None:
    migrated.command(
        "INSERT INTO journeys (journey_id, definition_id, person_id, status, stage, started_at,"
        " version) VALUES ('j1', 'purchase', 'p1', 'dropped_off', 'cart', now64(3), 1)"
    )
    migrated.command(
        "INSERT INTO dropoffs (dropoff_id, journey_id, definition_id, person_id, stage, "
        "last_channel, version) VALUES ('d1', 'j1', 'purchase', 'p1', 'cart', 'web', 1)"
    )
    rows = migrated.query(
        "SELECT d.dropoff_id, j.status, j.latest_person_id FROM dropoffs_standing AS d "
        "JOIN journeys_latest AS j ON j.journey_id = d.journey_id"
    ).result_rows
    assert rows == [("d1", "dropped_off", "p1")]
