"""The ClickHouse schema, written once as SQLAlchemy tables with clickhouse-connect's dialect.

`ddl()` compiles them to `CREATE TABLE IF NOT EXISTS` statements; the same `metadata` gives
analysts a SQLAlchemy engine to query with pandas or a BI tool.

Deduplication, in layers (domain.md §7): the sink inserts each batch with a token made of its
Kafka offset range, and `non_replicated_deduplication_window` makes ClickHouse drop a re-sent
batch; ReplacingMergeTree on the event id is the last line for anything that slips past.
"""

from __future__ import annotations

from typing import Any, cast

from clickhouse_connect.cc_sqlalchemy.datatypes.base import sqla_type_from_name
from clickhouse_connect.cc_sqlalchemy.ddl.tableengine import ReplacingMergeTree
from clickhouse_connect.cc_sqlalchemy.dialect import ClickHouseDialect
from sqlalchemy import Column, MetaData, Table
from sqlalchemy.schema import CreateTable
from sqlalchemy.types import TypeEngine


def ch(type_name: str) -> TypeEngine[Any]:
    """A column type written as ClickHouse spells it."""
    return cast(TypeEngine[Any], sqla_type_from_name(type_name))


# Inserts whose token is remembered; a batch re-sent after a crash is far more recent.
DEDUP_WINDOW = 10_000

metadata = MetaData()

IDENTITY = (
    "Tuple(customer_id Nullable(String), anonymous_id Nullable(String), "
    "device_id Nullable(String), email_hash Nullable(String), phone_hash Nullable(String), "
    "loyalty_id Nullable(String))"
)

touchpoints = Table(
    "touchpoints",
    metadata,
    Column("event_id", ch("UUID")),
    Column("channel", ch("LowCardinality(String)")),
    Column("source", ch("LowCardinality(String)")),
    Column("event_type", ch("LowCardinality(String)")),
    Column("schema_version", ch("UInt16")),
    Column("occurred_at", ch("DateTime64(3, 'UTC')")),
    Column("received_at", ch("DateTime64(3, 'UTC')")),
    Column("identity", ch(IDENTITY)),
    Column("session_id", ch("Nullable(String)")),
    Column("touchpoint", ch("Nullable(String)")),
    Column("properties", ch("Map(String, Nullable(String))")),
    Column("backfill", ch("Bool")),
    ReplacingMergeTree(
        order_by=("channel", "toStartOfHour(occurred_at)", "event_id"),
        partition_by="toYYYYMM(occurred_at)",
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="One row per accepted touchpoint (deduplicated by event_id).",
)


def ddl() -> list[str]:
    """The statements that create every table, idempotently."""
    dialect = ClickHouseDialect()
    return [
        str(CreateTable(table, if_not_exists=True).compile(dialect=dialect))
        for table in metadata.sorted_tables
    ]
