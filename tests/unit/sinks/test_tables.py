"""sinks.tables: the ClickHouse DDL compiles and keeps the deduplication layers."""

from __future__ import annotations

import re

from sinks.tables import DEDUP_WINDOW, added_columns, ddl, metadata, quote, touchpoints


def touchpoints_statement() -> str:
    (statement,) = [s for s in ddl() if re.search(r"TABLE IF NOT EXISTS `?touchpoints`?", s)]
    return statement


def test_every_table_compiles_idempotently() -> None:
    statements = ddl()
    assert statements
    assert all(
        s.startswith(("CREATE TABLE IF NOT EXISTS ", "CREATE OR REPLACE VIEW ")) for s in statements
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


def test_added_columns_bring_an_older_table_up_to_date_in_place() -> None:
    current = {t.name: [c.name for c in t.columns] for t in metadata.sorted_tables}
    assert added_columns(current) == []
    assert added_columns({}) == []  # missing tables are created, not altered
    names = current["dropoffs"]
    assert names[:2] == ["dropoff_id", "journey_id"] and "signals" in names
    before_signals = names[names.index("signals") - 1]
    older = [n for n in names if n not in ("dropoff_id", "signals")]
    said = {name: quote(metadata.tables["dropoffs"].c[name].comment or "") for name in names}
    assert added_columns({"dropoffs": older}) == [
        "ALTER TABLE `dropoffs` ADD COLUMN IF NOT EXISTS `dropoff_id` String "
        f"COMMENT {said['dropoff_id']} FIRST",
        "ALTER TABLE `dropoffs` ADD COLUMN IF NOT EXISTS `signals` Array(String) "
        f"COMMENT {said['signals']} AFTER `{before_signals}`",
    ]
