"""The cluster schema (`sinks/cluster.py`) made and used on a one-node "cluster" in chDB: a
`remote_servers` entry naming chDB itself, so the Distributed tables and the views over them
really run. That node has no Keeper and no distributed DDL queue, so `ON CLUSTER` is left out
and each Replicated engine runs as its non-replicated form: what a real cluster adds
(replication, DDL on every node, several shards) is not exercised here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.query import QueryResult

from sinks.clickhouse import (
    CLUSTER_INSERT_SETTINGS,
    insert_into_cluster,
    insert_json_rows,
    migrate,
    session,
)
from sinks.cluster import cluster_ddl, local_name, migrate_cluster
from sinks.constraints import ROW_CHECKS
from sinks.definitions import TABLE as DEFINITIONS
from sinks.tables import metadata
from sinks.views import VIEWS

from .analyst_rows import fill

CLUSTER = "analytics"
TABLES = sorted([*metadata.tables, DEFINITIONS])
VIEW_NAMES = [name for name in VIEWS if name != DEFINITIONS]
STATEMENTS = cluster_ddl(CLUSTER)

_REPLICATED = re.compile(r"ENGINE = Replicated(\w+)\('[^']*', '\{replica\}'(?:, )?")


class OneNode:
    """A client for a one-node cluster with no Keeper: runs each cluster statement without
    `ON CLUSTER` and each Replicated engine as its non-replicated form."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.applied: list[str] = []

    def command(self, cmd: str) -> object:
        self.applied.append(cmd)
        assert f" ON CLUSTER `{CLUSTER}` " in cmd, cmd[:120]
        cmd = _REPLICATED.sub(r"ENGINE = \1(", cmd.replace(f" ON CLUSTER `{CLUSTER}`", ""))
        cmd = cmd.replace(
            " replicated_deduplication_window =", " non_replicated_deduplication_window ="
        )
        return self.client.command(cmd)

    def query(self, query: str) -> QueryResult:
        return self.client.query(query)


def one_node_cluster(folder: Path) -> Client:
    """chDB at `folder`, with a `remote_servers` entry CLUSTER of one shard: itself."""
    config = folder.parent / "cluster.xml"
    config.write_text(
        "<clickhouse><tcp_port>19471</tcp_port><remote_servers><"
        + CLUSTER
        + "><shard><replica><host>localhost</host><port>19471</port></replica></shard></"
        + CLUSTER
        + "></remote_servers></clickhouse>"
    )
    return clickhouse_connect.get_client(interface="chdb", path=f"{folder}?config-file={config}")


def view_rows(client: Client) -> dict[str, list[str]]:
    return {
        view: sorted(repr(row) for row in client.query(f"SELECT * FROM `{view}`").result_rows)
        for view in VIEW_NAMES
    }


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The views' rows over the analysts' hand-made rows, on one server and on the one-node
    cluster (chDB opens one folder at a time: one after the other)."""
    with session(f"chdb://{tmp_path_factory.mktemp('single') / 'ch'}") as single:
        migrate(single)
        fill(single)
        expected = view_rows(single)
    client = one_node_cluster(tmp_path_factory.mktemp("cluster") / "ch")
    try:
        assert client.query("SELECT is_local FROM system.clusters").result_rows == [(1,)]
        node = OneNode(client)
        first = migrate_cluster(node, CLUSTER)
        applied = list(node.applied)
        node.applied.clear()
        again = migrate_cluster(node, CLUSTER)
        applied_again = list(node.applied)
        # An older version's alerts, without their last column, on both tables.
        for table in ("alerts_local", "alerts"):
            client.command(f"ALTER TABLE `{table}` DROP COLUMN related")
        node.applied.clear()
        migrate_cluster(node, CLUSTER)
        insert_into_cluster(client)
        fill(client)
        yield {
            "expected": expected,
            "rows": view_rows(client),
            "client": client,
            "first": first,
            "again": again,
            "applied": applied,
            "applied_again": applied_again,
            "applied_after_drop": list(node.applied),
        }
    finally:
        client.close()


def test_migrate_on_the_cluster_is_idempotent(answers: dict[str, Any]) -> None:
    applied: list[str] = answers["applied"]
    assert answers["first"] == len(applied)
    assert set(STATEMENTS) <= set(applied)
    # The second time: what is always applied (the IF NOT EXISTS statements, the checks, the
    # views, whose comments go with them when they are made again), no column, no table comment.
    again: list[str] = answers["applied_again"]
    assert answers["again"] == len(again) == len(STATEMENTS) + len(ROW_CHECKS) + len(VIEW_NAMES)
    assert not [s for s in again if "ADD COLUMN" in s]
    commented = {s.split("`")[1] for s in again if "COMMENT COLUMN" in s}
    assert commented == set(VIEW_NAMES)


def test_a_column_an_older_version_lacks_is_added_to_both_tables(
    answers: dict[str, Any],
) -> None:
    added = [s for s in answers["applied_after_drop"] if "ADD COLUMN" in s]
    assert [s.split("`")[1] for s in added] == ["alerts_local", "alerts"]
    assert all("`related` " in s and s.endswith(" AFTER `change`") for s in added)
    client: Client = answers["client"]
    for table in ("alerts_local", "alerts"):
        last = client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            f"AND table = '{table}' ORDER BY position DESC LIMIT 1"
        )
        assert last.result_rows == [("related",)]


def test_distributed_and_local_tables_have_the_same_columns(answers: dict[str, Any]) -> None:
    client: Client = answers["client"]
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, name, type_ in client.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() "
        "ORDER BY table, position"
    ).result_rows:
        columns.setdefault(table, []).append((name, type_))
    engines: dict[str, str] = {
        str(name): str(engine)
        for name, engine in client.query(
            "SELECT name, engine FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    for table in TABLES:
        assert engines[table] == "Distributed" and engines[local_name(table)].endswith("MergeTree")
        assert columns[table] == columns[local_name(table)]
    single = {t.name: [c.name for c in t.columns] for t in metadata.tables.values()}
    for table, names in single.items():
        assert [name for name, _ in columns[table]] == names


def test_the_views_answer_over_distributed_tables_as_on_one_server(
    answers: dict[str, Any],
) -> None:
    assert answers["expected"]["funnel_daily"]  # the hand-made rows reached the views
    for view in VIEW_NAMES:
        assert answers["rows"][view] == answers["expected"][view], view


def test_the_sinks_token_reaches_the_shard_through_the_distributed_table(
    answers: dict[str, Any],
) -> None:
    client: Client = answers["client"]
    assert client.get_client_setting("distributed_foreground_insert") == str(
        CLUSTER_INSERT_SETTINGS["distributed_foreground_insert"]
    )
    row = {
        "event_id": "5f0c1a52-0000-4000-8000-00000000c1a5",
        "channel": "web",
        "event_type": "page_view",
        "occurred_at": "2026-02-01 10:00:00",
        "person_id": "p-cluster",
    }
    batch = orjson.dumps([row])
    for _ in range(2):  # a batch re-sent after a crash, with its token
        insert_json_rows(client, "touchpoints", batch, "offsets:0-0")
    count = "SELECT count() FROM touchpoints_local WHERE person_id = 'p-cluster'"
    assert client.query(count).result_rows == [(1,)]
    # A row the shard's check refuses fails the sink's insert (its refused-batch path).
    with pytest.raises(DatabaseError) as refused:
        insert_json_rows(client, "touchpoints", b'[{"not": "a row"}]', "offsets:1-1")
    assert "469" in str(refused.value)
