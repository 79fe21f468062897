"""sinks.tables: the ClickHouse DDL compiles and keeps the deduplication layers."""

from __future__ import annotations

import re

from sinks.tables import DEDUP_WINDOW, ddl, touchpoints


def touchpoints_statement() -> str:
    (statement,) = [s for s in ddl() if re.search(r"TABLE IF NOT EXISTS `?touchpoints`?", s)]
    return statement


def test_every_table_compiles_idempotently() -> None:
    statements = ddl()
    assert statements
    assert all(
        s.startswith(("CREATE TABLE IF NOT EXISTS ", "CREATE VIEW IF NOT EXISTS "))
        for s in statements
    )
    assert ddl() == statements


def test_touchpoints_is_a_replacing_merge_tree_with_an_insert_dedup_window() -> None:
    statement = touchpoints_statement()
    assert "ReplacingMergeTree" in statement
    assert f"non_replicated_deduplication_window = {DEDUP_WINDOW}" in statement
    assert DEDUP_WINDOW > 0
    assert re.search(r"ORDER BY \(.*event_id\)", statement)


def test_touchpoints_has_a_column_per_touchpoint_field() -> None:
    statement = touchpoints_statement()
    for column in touchpoints.columns:
        assert f"`{column.name}` " in statement
    assert "`occurred_at` DateTime64(3, 'UTC')" in statement
    assert "`event_id` UUID" in statement
