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
    # The person known when the identity stage routed the event ('' without a usable
    # identifier), and the identifier that chose it: `touchpoints_latest` re-resolves it.
    Column("person_id", ch("String")),
    Column("person_key", ch("String")),
    ReplacingMergeTree(
        order_by=("person_id", "occurred_at", "event_id"),
        partition_by="toYYYYMM(occurred_at)",
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="One row per accepted touchpoint (deduplicated by event_id), ordered per person.",
)

identity_links = Table(
    "identity_links",
    metadata,
    Column("event_id", ch("UUID")),
    Column("occurred_at", ch("DateTime64(6, 'UTC')")),
    Column("channel", ch("LowCardinality(String)")),
    Column("source", ch("LowCardinality(String)")),
    Column("identity", ch(IDENTITY)),
    Column("person_id", ch("String")),
    ReplacingMergeTree(
        order_by=("person_id", "event_id"),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="Events that carried several identifiers (or a junk one), as the authority saw them; "
    "person_id is the routing stage's person at the time.",
)

identity_overrides = Table(
    "identity_overrides",
    metadata,
    Column("identifier", ch("String")),
    Column("person_id", ch("String")),
    Column("remapped", ch("Bool")),
    Column("version", ch("UInt64")),
    Column("published_at", ch("UInt64")),
    ReplacingMergeTree(
        version="version",
        order_by=("identifier",),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="Identifiers whose person changed (merges and moves); the latest version wins. "
    "remapped=false: the identifier is back to the person it names itself.",
)

identity_audit = Table(
    "identity_audit",
    metadata,
    Column("record_id", ch("UUID")),
    Column("kind", ch("LowCardinality(String)")),
    Column("rule", ch("LowCardinality(String)")),
    Column("person_id", ch("String")),
    Column("old_person_ids", ch("Array(String)")),
    Column("identifiers", ch("Array(String)")),
    Column("event_id", ch("String")),
    Column("event_time", ch("DateTime64(6, 'UTC')")),
    Column("detail", ch("String")),
    Column("retracted", ch("Bool")),
    Column("version", ch("UInt64")),
    ReplacingMergeTree(
        version="version",
        order_by=("person_id", "record_id"),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="Every merge, move and refusal of identity stitching, with its rule and the "
    "triggering event; a retracted refusal is a newer version of the same record.",
)

VIEWS = {
    "touchpoints_latest": """
CREATE VIEW IF NOT EXISTS touchpoints_latest AS
SELECT t.*,
       if(o.identifier = '', t.person_id, o.person_id) AS latest_person_id
FROM touchpoints AS t FINAL
LEFT JOIN (
    SELECT identifier, argMax(person_id, version) AS person_id
    FROM identity_overrides
    GROUP BY identifier
) AS o ON o.identifier = t.person_key
""",
}
"""Views over the tables. `touchpoints_latest` resolves every touchpoint to its person's latest
id: the override of the identifier that routed it, if it ever changed person, else the person
stamped at processing time (which then is still right: see ARCHITECTURE.md "Identity")."""


def ddl() -> list[str]:
    """The statements that create every table, idempotently."""
    dialect = ClickHouseDialect()
    tables = [
        str(CreateTable(table, if_not_exists=True).compile(dialect=dialect))
        for table in metadata.sorted_tables
    ]
    return tables + [view.strip() for view in VIEWS.values()]
