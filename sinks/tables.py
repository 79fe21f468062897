"""The ClickHouse schema, written once as SQLAlchemy tables with clickhouse-connect's dialect.

`ddl()` compiles them to `CREATE TABLE IF NOT EXISTS` statements (and the views to `CREATE OR
REPLACE VIEW`); `added_columns()` gives the `ALTER TABLE` statements that bring a table an
older version made up to date. The same `metadata` gives analysts a SQLAlchemy engine to query
with pandas or a BI tool.

Deduplication, in layers (docs/concepts.md §8): the sink inserts each batch with a token made of its
Kafka offset range, and `non_replicated_deduplication_window` makes ClickHouse drop a re-sent
batch; ReplacingMergeTree on the event id is the last line for anything that slips past.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from clickhouse_connect.cc_sqlalchemy.datatypes.base import sqla_type_from_name
from clickhouse_connect.cc_sqlalchemy.ddl.tableengine import ReplacingMergeTree
from clickhouse_connect.cc_sqlalchemy.dialect import ClickHouseDialect
from sqlalchemy import Column, MetaData, Table, text
from sqlalchemy.schema import CreateColumn, CreateTable
from sqlalchemy.types import TypeEngine

from sinks.views import VIEWS


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
    # Contract v2: the typed block of the event's channel as JSON text (query with
    # JSONExtract*(call_center, 'wait_seconds')), and the friction signals it stated.
    Column("web", ch("Nullable(String)")),
    Column("app", ch("Nullable(String)")),
    Column("call_center", ch("Nullable(String)")),
    Column("store", ch("Nullable(String)")),
    Column(
        "friction",
        ch(
            "Array(Tuple(signal LowCardinality(String), detail Nullable(String), "
            "value Nullable(Float64)))"
        ),
    ),
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

TIME = "DateTime64(3, 'UTC')"
MAYBE_TIME = "Nullable(DateTime64(3, 'UTC'))"

journeys = Table(
    "journeys",
    metadata,
    Column("journey_id", ch("String")),
    Column("definition_id", ch("LowCardinality(String)")),
    Column("definition_version", ch("UInt32")),
    Column("person_id", ch("String")),
    Column("status", ch("LowCardinality(String)")),
    Column("stage", ch("LowCardinality(String)")),
    Column("started_at", ch(TIME)),
    Column("ended_at", ch(MAYBE_TIME)),
    Column("stages", ch(f"Array(Tuple(String, {TIME}, String))")),
    Column("channels", ch("Array(LowCardinality(String))")),
    Column("touchpoints", ch("UInt32")),
    Column("friction", ch("UInt32")),
    Column("time_to_convert_ms", ch("Nullable(Int64)")),
    Column("hold", ch("Nullable(String)")),
    Column("merged_into", ch("Nullable(String)")),
    Column("version", ch("UInt64")),
    # Not by person: a journey keeps its id when an identity merge gives it a new person.
    ReplacingMergeTree(
        version="version",
        order_by=("definition_id", "journey_id"),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="The latest version of each journey instance (read with FINAL): status open, "
    "converted, dropped_off, expired or merged (into merged_into); stages reached as "
    "(stage, time, channel).",
)

journey_transitions = Table(
    "journey_transitions",
    metadata,
    Column("transition_id", ch("String")),
    Column("journey_id", ch("String")),
    Column("definition_id", ch("LowCardinality(String)")),
    Column("definition_version", ch("UInt32")),
    Column("person_id", ch("String")),
    Column("from_stage", ch("Nullable(String)")),
    Column("to_stage", ch("LowCardinality(String)")),
    Column("at", ch(TIME)),
    Column("channel", ch("LowCardinality(String)")),
    Column("touchpoint", ch("Nullable(String)")),
    Column("event_id", ch("String")),
    Column("elapsed_ms", ch("Nullable(Int64)")),
    Column("version", ch("UInt64")),
    Column("retracted", ch("Bool")),
    ReplacingMergeTree(
        version="version",
        order_by=("definition_id", "to_stage", "transition_id"),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="A journey reaching a stage; the latest version wins, retracted=true when a "
    "later fold (late event, merge) undid it.",
)

dropoffs = Table(
    "dropoffs",
    metadata,
    Column("dropoff_id", ch("String")),
    Column("journey_id", ch("String")),
    Column("definition_id", ch("LowCardinality(String)")),
    Column("definition_version", ch("UInt32")),
    Column("person_id", ch("String")),
    Column("stage", ch("LowCardinality(String)")),
    Column("stage_entered_at", ch(TIME)),
    Column("dropped_at", ch(TIME)),
    Column("reason", ch("LowCardinality(String)")),
    Column("failure_stage", ch("Nullable(String)")),
    Column("stage_channel", ch("LowCardinality(String)")),
    Column("last_channel", ch("LowCardinality(String)")),
    Column("last_touchpoint", ch("Nullable(String)")),
    Column("last_event_at", ch(TIME)),
    Column("friction", ch("UInt32")),
    Column("touchpoints", ch("UInt32")),
    Column("channels", ch("Array(LowCardinality(String))")),
    # The distinct friction signals the journey met, the most recent last, at most 8, as
    # `<signal>@<channel>:<touchpoint>` (`payment_declined@web:/checkout`). Added later: a table
    # created before lacks it (inserts skip the field) until `ALTER TABLE dropoffs ADD
    # COLUMN signals Array(String) AFTER channels`.
    Column("signals", ch("Array(String)")),
    Column("version", ch("UInt64")),
    Column("retracted", ch("Bool")),
    Column("retraction_reason", ch("LowCardinality(String)")),
    ReplacingMergeTree(
        version="version",
        order_by=("definition_id", "stage", "dropoff_id"),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="Drop-offs, with the friction signals each journey met (signals); a retraction "
    "writes a newer version of the same drop-off with retracted=true, so `FROM dropoffs FINAL "
    "WHERE NOT retracted` (the view dropoffs_standing) counts only those that still stand.",
)

journey_retractions = Table(
    "journey_retractions",
    metadata,
    Column("retraction_id", ch("String")),
    Column("retracted_id", ch("String")),
    Column("retracted", ch("LowCardinality(String)")),
    Column("journey_id", ch("String")),
    Column("definition_id", ch("LowCardinality(String)")),
    Column("definition_version", ch("UInt32")),
    Column("person_id", ch("String")),
    Column("stage", ch("LowCardinality(String)")),
    Column("reason", ch("LowCardinality(String)")),
    Column("event_id", ch("Nullable(String)")),
    Column("at", ch(MAYBE_TIME)),
    Column("version", ch("UInt64")),
    ReplacingMergeTree(
        order_by=("journey_id", "retraction_id"),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="Every correction of an outcome (drop-off, conversion, expiry) and why: "
    "late_event, reopened or merged.",
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", ch("String")),
    Column("person_id", ch("String")),
    Column("channel", ch("LowCardinality(String)")),
    Column("started_at", ch(TIME)),
    Column("ended_at", ch(TIME)),
    Column("events", ch("UInt32")),
    Column("friction", ch("UInt32")),
    Column("task_completed", ch("Bool")),
    Column("first_touchpoint", ch("Nullable(String)")),
    Column("last_touchpoint", ch("Nullable(String)")),
    # Added later: rows written before are closed sessions (the only ones reported then).
    Column("status", ch("LowCardinality(String)"), server_default=text("'closed'")),
    Column("version", ch("UInt64")),
    # A table created before `version` replaces by insertion order instead (ENGINE cannot be
    # altered): the sink inserts each partition's rows in order, which holds that too, except
    # for a session carried to another partition by an identity merge (CHANGELOG.md).
    ReplacingMergeTree(
        version="version",
        order_by=("channel", "session_id"),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="UX sessions per channel (inactivity gap), with task completion; the latest "
    "version wins (read with FINAL): status open while it may still grow, closed once its gap "
    "passed, merged when its events now count in another session.",
)

friction_windows = Table(
    "friction_windows",
    metadata,
    Column("series_kind", ch("LowCardinality(String)")),
    Column("scope", ch("String")),
    Column("window_start", ch(TIME)),
    Column("window_end", ch(TIME)),
    Column("version", ch("UInt64")),
    Column("counts", ch("Map(String, Int64)")),
    Column("backfill", ch("Bool")),
    ReplacingMergeTree(
        version="version",
        order_by=("series_kind", "scope", "window_start"),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="Every friction series' counters per event-time window, summed over all "
    "partitions (read with FINAL: a late event re-emits a window as a higher version). "
    "friction: exposures, one counter per signal and `friction`; stage: entered, progressed, "
    "dropped, and `saw:<signal>@<channel>:<touchpoint>`: dropped journeys that met it; "
    "volume: events.",
)

alerts = Table(
    "alerts",
    metadata,
    Column("incident_id", ch("String")),
    Column("version", ch("UInt64")),
    Column("status", ch("LowCardinality(String)")),
    Column("kind", ch("LowCardinality(String)")),
    Column("series_kind", ch("LowCardinality(String)")),
    Column("scope", ch("String")),
    Column("series_name", ch("String")),
    Column("place", ch("String")),
    Column("started_at", ch(TIME)),
    Column("last_window_start", ch(TIME)),
    Column("last_window_end", ch(TIME)),
    Column("resolved_at", ch(MAYBE_TIME)),
    Column("windows", ch("UInt32")),
    Column("observed", ch("Int64")),
    Column("expected", ch("Nullable(Float64)")),
    Column("volume", ch("Int64")),
    Column("p_value", ch("Nullable(Float64)")),
    Column("severity", ch("LowCardinality(String)")),
    Column("explanation", ch("String")),
    Column("team", ch("Nullable(String)")),
    Column("route", ch("Nullable(String)")),
    Column("cause", ch("Nullable(String)")),
    Column("related_series", ch("Array(String)")),
    Column("related_ids", ch("Array(String)")),
    Column(
        "examples",
        ch(
            "Array(Tuple(person_id String, at Float64, channel String, "
            "touchpoint Nullable(String), what String, "
            "journey_id Nullable(String)))"
        ),
    ),
    Column("last_alert_id", ch("String")),
    Column("notify", ch("Bool")),
    ReplacingMergeTree(
        version="version",
        order_by=("incident_id",),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="Friction and drop-off alerts, one per problem (read with FINAL for the latest "
    "version): status firing, resolved or retracted; the headline series with observed and "
    "expected, the related series it groups, owning team, likely cause and example journeys.",
)


def ddl() -> list[str]:
    """The statements that create every table that is missing, then (re)create every view:
    a view fixes its columns when it is made, so one made before a column was added to its
    table would not show it."""
    dialect = ClickHouseDialect()
    tables = [
        str(CreateTable(table, if_not_exists=True).compile(dialect=dialect))
        for table in metadata.sorted_tables
    ]
    return tables + [view.strip() for view in VIEWS.values()]


def added_columns(existing: Mapping[str, Sequence[str]]) -> list[str]:
    """`ALTER TABLE` statements adding the columns this version's tables have and an older
    version's lack, each in its place. `existing` maps a table's name to its columns as the
    database has them; tables not in it are left alone (`ddl()` creates them). Columns are only
    added: one this version dropped, or whose type changed, needs a hand-written migration."""
    dialect = ClickHouseDialect()
    statements = []
    for table in metadata.sorted_tables:
        have = existing.get(table.name)
        if have is None:
            continue
        previous = None
        for column in table.columns:
            if column.name not in have:
                spec = CreateColumn(column).compile(dialect=dialect)
                place = f" AFTER `{previous}`" if previous is not None else " FIRST"
                statements.append(
                    f"ALTER TABLE `{table.name}` ADD COLUMN IF NOT EXISTS {spec}{place}"
                )
            previous = column.name
    return statements
