"""The schema on a ClickHouse cluster (`sinks/cluster.py`). No cluster runs here: every
statement is parsed by the real engine (chDB's `formatQuery`) and its structure is checked;
test_cluster_on_one_node.py makes and uses the schema on a one-node "cluster" in chDB."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import (
    session,
)
from sinks.cluster import (
    cluster_added_columns,
    cluster_comment_changes,
    cluster_ddl,
    cluster_name,
    cluster_row_checks,
    local_name,
)
from sinks.constraints import ROW_CHECKS
from sinks.definitions import TABLE as DEFINITIONS
from sinks.tables import DEDUP_WINDOW, ddl, metadata
from sinks.views import VIEWS

CLUSTER = "analytics"
TABLES = sorted([*metadata.tables, DEFINITIONS])
VIEW_NAMES = [name for name in VIEWS if name != DEFINITIONS]
STATEMENTS = cluster_ddl(CLUSTER)


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with session(f"chdb://{tmp_path_factory.mktemp('cluster_ddl') / 'ch'}") as client:
        yield client


def formatted(ch: Client, statement: str) -> str:
    """`statement` as ClickHouse's parser gives it back (a syntax error raises)."""
    return str(
        ch.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
    )


def older_columns() -> dict[str, list[str]]:
    """Every table as an older version had it: without its last column."""
    return {t.name: [c.name for c in t.columns][:-1] for t in metadata.tables.values()}


def alters() -> list[str]:
    existing = {name: dict.fromkeys(columns, "old") for name, columns in older_columns().items()}
    return (
        cluster_added_columns(older_columns(), older_columns(), CLUSTER)
        + cluster_row_checks(CLUSTER)
        + cluster_comment_changes(existing, existing, CLUSTER)
    )


def test_every_statement_parses_in_clickhouse_and_runs_on_the_cluster(ch: Client) -> None:
    statements = STATEMENTS + alters()
    assert len(statements) > 2 * len(TABLES) + len(VIEW_NAMES)
    for statement in statements:
        text = formatted(ch, statement)
        # ON CLUSTER on the statement's own first line, the object's.
        assert re.match(rf"(CREATE|ALTER) [^\n]* ON CLUSTER {CLUSTER}\b", text), text[:200]


def created(name: str) -> str:
    [statement] = [s for s in STATEMENTS if s.startswith(f"CREATE TABLE IF NOT EXISTS `{name}` ")]
    return statement


def test_every_table_is_a_replicated_local_table_under_a_distributed_one() -> None:
    assert len(STATEMENTS) == 2 * len(TABLES) + len(VIEW_NAMES)
    for table in TABLES:
        local = created(local_name(table))
        path = f"'/clickhouse/tables/{{shard}}/{{database}}/{table}_local', '{{replica}}'"
        assert re.search(rf"ENGINE = Replicated\w*MergeTree\({re.escape(path)}", local), local
        distributed = created(table)
        assert (
            f"AS `{table}_local` ENGINE = Distributed('{CLUSTER}', currentDatabase(), "
            f"'{table}_local', cityHash64(" in distributed
        )


def test_the_engine_keeps_its_version_column_and_clauses() -> None:
    single = {
        re.sub(r"CREATE TABLE IF NOT EXISTS `?(\w+).*", r"\1", s, flags=re.S): s
        for s in ddl()
        if s.startswith("CREATE TABLE")
    }
    for table in TABLES:
        local = created(local_name(table))
        engine = re.search(r"(?:Engine|ENGINE =) (\w+)(\(\w*\))?", single[table])
        assert engine is not None
        name, version = engine.group(1), engine.group(2)
        if version and version != "()":
            assert (
                f"ENGINE = Replicated{name}(" in local and f"'{{replica}}', {version[1:]}" in local
            )
        for clause in ("ORDER BY", "PARTITION BY", "TTL"):
            kept = re.search(rf"{clause} (\([^()]*\)|\S+)", single[table])
            assert (kept is None) == (re.search(rf"{clause} ", local) is None), (table, clause)
            if kept:
                assert f"{clause} {kept.group(1)}" in local
    assert "ver" + "sion)" in created("identity_overrides_local")


def test_the_deduplication_window_is_the_replicated_one_of_the_same_size() -> None:
    for statement in STATEMENTS:
        assert "non_replicated_deduplication_window" not in statement
    touchpoints = created("touchpoints_local")
    assert f"replicated_deduplication_window = {DEDUP_WINDOW}" in touchpoints


def sharding_key(table: str) -> list[str]:
    key = re.search(r"cityHash64\(([^()]*)\)\)", created(table))
    assert key is not None
    return [column.strip().strip("`") for column in key.group(1).split(",")]


def order_by(table: str) -> list[str]:
    key = re.search(r"ORDER BY \(([^()]*)\)", created(local_name(table)))
    assert key is not None
    return [column.strip().strip("`") for column in key.group(1).split(",")]


@pytest.mark.parametrize("table", TABLES)
def test_the_sharding_key_keeps_a_rows_versions_on_one_shard(table: str) -> None:
    """Only the row's identity (its ORDER BY) decides the shard, so FINAL sees every version;
    the person where the person is part of it."""
    key = sharding_key(table)
    assert set(key) <= set(order_by(table))
    if "person_id" in order_by(table):
        assert key == ["person_id"]


def test_touchpoints_and_identity_records_are_sharded_by_person() -> None:
    for table in ("touchpoints", "identity_links", "identity_audit"):
        assert sharding_key(table) == ["person_id"]
    # The person of a journey changes with merges: its versions would land on two shards.
    assert sharding_key("journeys") == ["definition_id", "journey_id"]


def test_views_are_made_on_the_cluster_with_global_joins() -> None:
    views = [s for s in STATEMENTS if s.startswith("CREATE OR REPLACE VIEW")]
    assert [s.split("`")[1] for s in views] == VIEW_NAMES
    joins = 0
    for view in views:
        assert f" ON CLUSTER `{CLUSTER}` AS" in view
        for join in re.finditer(r"(\w+) (?:\w+ )?JOIN\b", view):
            if "ARRAY JOIN" not in join.group(0):
                joins += 1
                assert "GLOBAL" in view[join.start() - 7 : join.end()], join.group(0)
        assert not re.search(r"(?<!GLOBAL) IN \(\s*SELECT", view)
    assert joins >= 8
    assert "GLOBAL ASOF LEFT JOIN" in next(v for v in views if "channel_switches" in v)


def test_alters_go_where_clickhouse_needs_them() -> None:
    added = cluster_added_columns(older_columns(), older_columns(), CLUSTER)
    for table in metadata.tables:
        mine = [s for s in added if re.match(rf"ALTER TABLE `{table}(_local)?` ", s)]
        assert [s.split("`")[1] for s in mine] == [local_name(table), table]
        assert all(f"ON CLUSTER `{CLUSTER}` ADD COLUMN IF NOT EXISTS" in s for s in mine)
    checks = cluster_row_checks(CLUSTER)
    assert sorted(s.split("`")[1] for s in checks) == sorted(map(local_name, ROW_CHECKS))
    existing = {name: dict.fromkeys(columns, "old") for name, columns in older_columns().items()}
    comments = cluster_comment_changes(existing, existing, CLUSTER)
    assert {s.split("`")[1] for s in comments} == {
        *metadata.tables,
        *map(local_name, metadata.tables),
    }


def test_a_cluster_name_is_checked() -> None:
    assert cluster_name("prod-eu.1") == "prod-eu.1"
    with pytest.raises(ValueError, match="not a cluster name"):
        cluster_ddl("prod`; DROP TABLE touchpoints; --")
