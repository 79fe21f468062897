"""The ClickHouse schema, written once as SQLAlchemy tables with clickhouse-connect's dialect.

`ddl()` compiles them to `CREATE TABLE IF NOT EXISTS` statements (and the views to `CREATE OR
REPLACE VIEW`); `added_columns()` gives the `ALTER TABLE` statements that bring a table an
older version made up to date, and `comment_changes()` those that give every column of every
table and view its `COMMENT` (what an analyst reads in `system.columns`, any client's schema
browser and docs/tables.md). The same `metadata` gives analysts a SQLAlchemy engine to query
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

from sinks.views import VIEW_DOCS, VIEWS


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
    Column(
        "event_id",
        ch("UUID"),
        comment="The event's id, a UUID chosen by its producer: a repeated id is the same event "
        "(ingest drops repeats; the table keeps one row per event).",
    ),
    Column(
        "channel",
        ch("LowCardinality(String)"),
        comment="Where the customer met the company: web, app, call_center or store.",
    ),
    Column(
        "source",
        ch("LowCardinality(String)"),
        comment="The system that emitted the event (a web shop, a contact-center platform, a till "
        "system); volume alerts watch each source.",
    ),
    Column(
        "event_type",
        ch("LowCardinality(String)"),
        comment="What happened, as the producer names it: product_view, add_to_cart, "
        "contact_ended, purchase, ...",
    ),
    Column(
        "schema_version",
        ch("UInt16"),
        comment="The event contract the producer wrote against: 1, 2 (which adds the channel "
        "columns web, app, call_center, store and the stated friction) or 3 (which adds "
        "attribution).",
    ),
    Column(
        "occurred_at",
        ch("DateTime64(3, 'UTC')"),
        comment="When it happened (event time, UTC, ms): journeys, sessions and friction windows "
        "are all decided on this time.",
    ),
    Column(
        "received_at",
        ch("DateTime64(3, 'UTC')"),
        comment="When the pipeline took the event (UTC, ms), set by ingest if the producer did "
        "not; store and call-center exports arrive hours after occurred_at.",
    ),
    Column(
        "identity",
        ch(IDENTITY),
        comment="The identifiers the event carried, NULL where absent (at least one is set); "
        "email_hash and phone_hash are keyed digests `<key id>:<hex>`, never plain contact "
        "details.",
    ),
    Column(
        "session_id",
        ch("Nullable(String)"),
        comment="The channel's own session id as the producer sent it, NULL when it has none; "
        "not the UX session of the sessions table.",
    ),
    Column(
        "touchpoint",
        ch("Nullable(String)"),
        comment="Where it happened: a page path, an app screen, a call queue, a store or till; "
        "NULL when the producer named none.",
    ),
    Column(
        "properties",
        ch("Map(String, Nullable(String))"),
        comment="Up to 64 further values of the event by name, as text (numbers and booleans too).",
    ),
    Column(
        "backfill",
        ch("Bool"),
        comment="true for history loaded after the fact: it teaches the friction baselines but "
        "never raises an alert.",
    ),
    # Contract v2: the typed block of the event's channel as JSON text (query with
    # JSONExtract*(call_center, 'wait_seconds')), and the friction signals it stated.
    Column(
        "web",
        ch("Nullable(String)"),
        comment="Contract v2, web events: path, referrer, http_status, load_ms, rage_clicks, "
        "dead_clicks, search_results as JSON text (read with JSONExtract*); NULL otherwise.",
    ),
    Column(
        "app",
        ch("Nullable(String)"),
        comment="Contract v2, app events: screen, app_version, os, os_version, http_status, "
        "response_ms, crash as JSON text (read with JSONExtract*); NULL otherwise.",
    ),
    Column(
        "call_center",
        ch("Nullable(String)"),
        comment="Contract v2, call-center events: contact_id, queue, agent, wait_seconds, "
        "handle_seconds, transfers, disposition, abandoned, repeat_contact, survey_score as JSON "
        "text (read with JSONExtract*); NULL otherwise.",
    ),
    Column(
        "store",
        ch("Nullable(String)"),
        comment="Contract v2, store events: store_id, till, transaction_id, amount, currency, "
        "items, is_return, out_of_stock, wait_seconds as JSON text (read with JSONExtract*); "
        "NULL otherwise.",
    ),
    Column(
        "friction",
        ch(
            "Array(Tuple(signal LowCardinality(String), detail Nullable(String), "
            "value Nullable(Float64)))"
        ),
        comment="Contract v2: the friction signals the producer stated on the event (signal, "
        "detail for people, value such as seconds waited), at most 16; empty otherwise. Signals "
        "the friction mapping finds are not listed here.",
    ),
    # Contract v3: typed, so analysts filter on attribution.utm_campaign without JSON parsing.
    Column(
        "attribution",
        ch(
            "Tuple(page_url Nullable(String), referrer Nullable(String), "
            "utm_source Nullable(String), utm_medium Nullable(String), "
            "utm_campaign Nullable(String), utm_term Nullable(String), "
            "utm_content Nullable(String), user_agent_family Nullable(String), "
            "device_class Nullable(String), ip Nullable(String))"
        ),
        comment="Contract v3, any channel: where the customer came from and on what. page_url "
        "and referrer keep only allow-listed query parameters (UTM and what the source "
        "declares); utm_* from the SDK's campaign context or the page URL; user_agent_family "
        "(Chrome, Mobile Safari, ...) and device_class (desktop, mobile, tablet, bot, other) "
        "parsed from the user agent; ip never raw: NULL (the default), truncated or a keyed "
        "hash. Every element NULL on events without it (read attribution.utm_campaign).",
    ),
    # The person known when the identity stage routed the event ('' without a usable
    # identifier), and the identifier that chose it: `touchpoints_latest` re-resolves it.
    Column(
        "person_id",
        ch("String"),
        comment="The person the identity stage gave the event when it routed it ('' without a "
        "usable identifier); never rewritten, so a later merge shows only in "
        "touchpoints_latest.latest_person_id.",
    ),
    Column(
        "person_key",
        ch("String"),
        comment="The identifier that chose person_id, as `<type>:<value>` (the event's most "
        "stable usable identifier); touchpoints_latest looks it up in identity_overrides.",
    ),
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
    Column(
        "event_id",
        ch("UUID"),
        comment="The event that carried the identifiers (touchpoints.event_id).",
    ),
    Column(
        "occurred_at",
        ch("DateTime64(6, 'UTC')"),
        comment="The event's time (event time, UTC, µs): links are decided in this order.",
    ),
    Column(
        "channel",
        ch("LowCardinality(String)"),
        comment="The event's channel: web, app, call_center or store.",
    ),
    Column(
        "source",
        ch("LowCardinality(String)"),
        comment="The system that emitted the event.",
    ),
    Column(
        "identity",
        ch(IDENTITY),
        comment="The identifiers the event carried, NULL where absent, junk values included "
        "(identity_audit records their refusal).",
    ),
    Column(
        "person_id",
        ch("String"),
        comment="The person the identity stage routed the event to before the link was decided "
        "(touchpoints.person_id).",
    ),
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
    Column(
        "identifier",
        ch("String"),
        comment="An identifier as `<type>:<value>` (the form of touchpoints.person_key).",
    ),
    Column(
        "person_id",
        ch("String"),
        comment="The person the identifier belongs to since this version.",
    ),
    Column(
        "remapped",
        ch("Bool"),
        comment="true: the identifier belongs to another person than the one it names itself; "
        "false: it is back to its own person.",
    ),
    Column(
        "version",
        ch("UInt64"),
        comment="Grows with every decision the identity stage publishes; the highest per "
        "identifier is the current one (read with FINAL or argMax).",
    ),
    Column(
        "published_at",
        ch("UInt64"),
        comment="When the identity stage published this version (processing time, epoch ms, "
        "not event time).",
    ),
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
    Column(
        "record_id",
        ch("UUID"),
        comment="The record's id, the same in every version of it (a refusal keeps its id when "
        "it is retracted).",
    ),
    Column(
        "kind",
        ch("LowCardinality(String)"),
        comment="merge (persons became one), move (identifiers left a person for another) or "
        "refusal (a guard refused a link, or junk was dropped).",
    ),
    Column(
        "rule",
        ch("LowCardinality(String)"),
        comment="Why: link (a new link merged) or correction (a late link re-decided) for merges "
        "and moves; denylist, customer_id_conflict or cap for refusals.",
    ),
    Column(
        "person_id",
        ch("String"),
        comment="The person that remains after a merge, or receives the identifiers of a move; "
        "for a refusal the event's routed person ('' if none).",
    ),
    Column(
        "old_person_ids",
        ch("Array(String)"),
        comment="The persons merged into person_id, or the one a move took identifiers from; "
        "empty for refusals.",
    ),
    Column(
        "identifiers",
        ch("Array(String)"),
        comment="The identifiers concerned, as `<type>:<value>`: the link's two, those that "
        "changed person, or those refused.",
    ),
    Column(
        "event_id",
        ch("String"),
        comment="The event that triggered it (touchpoints.event_id as text).",
    ),
    Column(
        "event_time",
        ch("DateTime64(6, 'UTC')"),
        comment="That event's time (event time, UTC, µs).",
    ),
    Column(
        "detail",
        ch("String"),
        comment="A refusal's reason for people; '' for merges and moves.",
    ),
    Column(
        "retracted",
        ch("Bool"),
        comment="true when a later decision withdrew this refusal (a late link, or an earlier "
        "event linking the same pair); always false for merges and moves.",
    ),
    Column(
        "version",
        ch("UInt64"),
        comment="Grows with every record the identity stage publishes; the highest per "
        "record_id is the current one (read with FINAL).",
    ),
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

# Said of every journey-derived table: where the definition's id and version come from.
_DEFINITION_ID = "The journey definition's id (journey_definitions.definition_id): purchase, ..."
_DEFINITION_VERSION = (
    "The definition's version the journey runs under (journey_definitions.version)."
)
_VERSION = (
    "The journey's version, which grows with every change; the highest per id is the current "
    "row (read with FINAL)."
)

journeys = Table(
    "journeys",
    metadata,
    Column(
        "journey_id",
        ch("String"),
        comment="The journey instance's id, made from its definition and the event that started "
        "it: it survives identity merges and replays.",
    ),
    Column("definition_id", ch("LowCardinality(String)"), comment=_DEFINITION_ID),
    Column("definition_version", ch("UInt32"), comment=_DEFINITION_VERSION),
    Column(
        "person_id",
        ch("String"),
        comment="The person whose journey it is, as the journeys stage knew them at this version; "
        "journeys_latest.latest_person_id follows later merges.",
    ),
    Column(
        "status",
        ch("LowCardinality(String)"),
        comment="open, converted (reached the success stage), dropped_off (a time limit passed, "
        "or a failure stage), expired (lifetime ran out) or merged (folded into merged_into).",
    ),
    Column(
        "stage",
        ch("LowCardinality(String)"),
        comment="The latest stage reached (a dropped-off journey's is where it dropped off).",
    ),
    Column(
        "started_at",
        ch(TIME),
        comment="When the event that started it happened (event time, UTC, ms).",
    ),
    Column(
        "ended_at",
        ch(MAYBE_TIME),
        comment="When it converted, expired or dropped off (the passed deadline, or the failure "
        "event; event time, UTC, ms); NULL while open.",
    ),
    Column(
        "stages",
        ch(f"Array(Tuple(String, {TIME}, String))"),
        comment="The stages reached in order, as (stage, reached at in UTC, channel of the event "
        "that reached it); the first is where it started.",
    ),
    Column(
        "channels",
        ch("Array(LowCardinality(String))"),
        comment="The channels of the journey's own events, in order of first use (the events its "
        "stages match, plus its definition's includes).",
    ),
    Column(
        "touchpoints",
        ch("UInt32"),
        comment="How many of the journey's own events it counted (not every touchpoint of the "
        "person in its time span).",
    ),
    Column(
        "friction",
        ch("UInt32"),
        comment="How many of the journey's own events carried friction (an event counts once "
        "whatever its signals).",
    ),
    Column(
        "time_to_convert_ms",
        ch("Nullable(Int64)"),
        comment="ended_at minus started_at in ms for a converted journey; NULL otherwise.",
    ),
    Column(
        "hold",
        ch("Nullable(String)"),
        comment="The value of the definition's hold_constant property (an order or case id) that "
        "makes this a journey of its own; NULL when the definition holds none.",
    ),
    Column(
        "merged_into",
        ch("Nullable(String)"),
        comment="For status merged: the journey_id it was folded into; NULL otherwise.",
    ),
    Column("version", ch("UInt64"), comment=_VERSION),
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
    Column(
        "transition_id",
        ch("String"),
        comment="`<journey_id>/<to_stage>`: one per journey and stage, whatever its versions.",
    ),
    Column("journey_id", ch("String"), comment="The journey (journeys.journey_id)."),
    Column("definition_id", ch("LowCardinality(String)"), comment=_DEFINITION_ID),
    Column("definition_version", ch("UInt32"), comment=_DEFINITION_VERSION),
    Column(
        "person_id",
        ch("String"),
        comment="The journey's person when it was written (journeys.person_id).",
    ),
    Column(
        "from_stage",
        ch("Nullable(String)"),
        comment="The stage reached before; NULL when this transition started the journey.",
    ),
    Column("to_stage", ch("LowCardinality(String)"), comment="The stage reached."),
    Column(
        "at",
        ch(TIME),
        comment="When the event that reached it happened (event time, UTC, ms).",
    ),
    Column(
        "channel",
        ch("LowCardinality(String)"),
        comment="The channel of that event (the stage channel).",
    ),
    Column(
        "from_channel",
        ch("LowCardinality(Nullable(String))"),
        comment="The channel from_stage was reached on (its stage channel): a journey that "
        "reached checkout on web and bought in store has web here and store in channel. NULL "
        "for the first stage, and in rows written before this column existed.",
    ),
    Column(
        "touchpoint",
        ch("Nullable(String)"),
        comment="That event's touchpoint (page, screen, queue, store); NULL when it had none.",
    ),
    Column(
        "event_id",
        ch("String"),
        comment="That event (touchpoints.event_id as text).",
    ),
    Column(
        "elapsed_ms",
        ch("Nullable(Int64)"),
        comment="ms since from_stage was reached; NULL for the first stage.",
    ),
    Column("version", ch("UInt64"), comment=_VERSION),
    Column(
        "retracted",
        ch("Bool"),
        comment="true when a later fold (a late event, a merge) undid the transition: count "
        "`FROM journey_transitions FINAL WHERE NOT retracted`.",
    ),
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
    Column(
        "dropoff_id",
        ch("String"),
        comment="The drop-off's id, the same in its retraction (so FINAL keeps the latest of "
        "the two).",
    ),
    Column("journey_id", ch("String"), comment="The journey (journeys.journey_id)."),
    Column("definition_id", ch("LowCardinality(String)"), comment=_DEFINITION_ID),
    Column("definition_version", ch("UInt32"), comment=_DEFINITION_VERSION),
    Column(
        "person_id",
        ch("String"),
        comment="The journey's person when it dropped off (journeys.person_id).",
    ),
    Column(
        "stage",
        ch("LowCardinality(String)"),
        comment="The stage the journey dropped off at: the last one it reached.",
    ),
    Column(
        "stage_entered_at",
        ch(TIME),
        comment="When the journey reached that stage (event time, UTC, ms).",
    ),
    Column(
        "dropped_at",
        ch(TIME),
        comment="When it dropped off (event time, UTC, ms): the stage's passed deadline, or the "
        "failure event (1970-01-01 on retraction rows older versions wrote).",
    ),
    Column(
        "reason",
        ch("LowCardinality(String)"),
        comment="time_limit (the stage's time limit passed without progress) or failure (a "
        "failure stage was reached).",
    ),
    Column(
        "failure_stage",
        ch("Nullable(String)"),
        comment="For reason failure: the failure stage reached (off the path, such as an order "
        "cancelled); NULL for time_limit.",
    ),
    Column(
        "stage_channel",
        ch("LowCardinality(String)"),
        comment="The channel of the event that reached stage: where the customer was when they "
        "got there ('' in rows written before it was added).",
    ),
    Column(
        "last_channel",
        ch("LowCardinality(String)"),
        comment="The channel of the journey's last own event before the drop-off; compare "
        "stage_channel: reached on web, last seen calling.",
    ),
    Column(
        "last_touchpoint",
        ch("Nullable(String)"),
        comment="The touchpoint of that last event; NULL when it had none.",
    ),
    Column(
        "last_event_at",
        ch(TIME),
        comment="When that last event happened (event time, UTC, ms).",
    ),
    Column(
        "friction",
        ch("UInt32"),
        comment="How many of the journey's own events carried friction until it dropped off.",
    ),
    Column(
        "touchpoints",
        ch("UInt32"),
        comment="How many of the journey's own events it counted until it dropped off.",
    ),
    Column(
        "channels",
        ch("Array(LowCardinality(String))"),
        comment="The channels of the journey's own events, in order of first use.",
    ),
    # The distinct friction signals the journey met, the most recent last, at most 8, as
    # `<signal>@<channel>:<touchpoint>` (`payment_declined@web:/checkout`). Added later: a table
    # created before lacks it (inserts skip the field) until `ALTER TABLE dropoffs ADD
    # COLUMN signals Array(String) AFTER channels`.
    Column(
        "signals",
        ch("Array(String)"),
        comment="The distinct friction signals the journey met, the most recent last, at most 8, "
        "as `<signal>@<channel>:<touchpoint>` (payment_declined@web:/checkout).",
    ),
    Column(
        "version",
        ch("UInt64"),
        comment="The journey's version when it dropped off; its retraction writes a higher one, "
        "so FINAL gives the row that stands.",
    ),
    Column(
        "retracted",
        ch("Bool"),
        comment="true on the row that withdraws the drop-off (the same facts again, a higher "
        "version): dropoffs_standing is `FINAL WHERE NOT retracted`.",
    ),
    Column(
        "retraction_reason",
        ch("LowCardinality(String)"),
        comment="Why it was withdrawn: late_event, reopened or merged (journey_retractions "
        "explains them); '' while it stands.",
    ),
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
    Column(
        "retraction_id",
        ch("String"),
        comment="The retraction's id: the outcome's id and the journey version it withdrew.",
    ),
    Column(
        "retracted_id",
        ch("String"),
        comment="The withdrawn outcome: a drop-off's dropoff_id, or the id of a conversion or "
        "expiry.",
    ),
    Column(
        "retracted",
        ch("LowCardinality(String)"),
        comment="What was withdrawn: dropped_off, converted or expired.",
    ),
    Column("journey_id", ch("String"), comment="The journey (journeys.journey_id)."),
    Column("definition_id", ch("LowCardinality(String)"), comment=_DEFINITION_ID),
    Column("definition_version", ch("UInt32"), comment=_DEFINITION_VERSION),
    Column(
        "person_id",
        ch("String"),
        comment="The journey's person at the retraction (journeys.person_id).",
    ),
    Column(
        "stage",
        ch("LowCardinality(String)"),
        comment="The stage of the withdrawn outcome (where it dropped off, converted or expired).",
    ),
    Column(
        "reason",
        ch("LowCardinality(String)"),
        comment="late_event (a late event shows progress in time), reopened (progress within "
        "the reopen window) or merged (an identity merge joined the journey to another).",
    ),
    Column(
        "event_id",
        ch("Nullable(String)"),
        comment="The event that caused it (touchpoints.event_id as text); NULL when no event did, "
        "as for merges.",
    ),
    Column(
        "at",
        ch(MAYBE_TIME),
        comment="That event's time (event time, UTC, ms); NULL with event_id.",
    ),
    Column(
        "version",
        ch("UInt64"),
        comment="The journey's version after the retraction (one more than the withdrawn "
        "outcome's).",
    ),
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
    Column(
        "session_id",
        ch("String"),
        comment="The UX session's id, made from its channel and first event (not "
        "touchpoints.session_id, the channel's own).",
    ),
    Column(
        "person_id",
        ch("String"),
        comment="The person whose session it is, as the journeys stage knew them then.",
    ),
    Column(
        "channel",
        ch("LowCardinality(String)"),
        comment="The one channel of the session: web, app, call_center or store.",
    ),
    Column(
        "started_at",
        ch(TIME),
        comment="Its first event's time (event time, UTC, ms).",
    ),
    Column(
        "ended_at",
        ch(TIME),
        comment="Its last event's time so far (event time, UTC, ms); the session closes once "
        "the inactivity gap (30 minutes by default) passes after it.",
    ),
    Column("events", ch("UInt32"), comment="How many events the session holds."),
    Column(
        "friction",
        ch("UInt32"),
        comment="How many of its events carried friction (an event counts once).",
    ),
    Column(
        "task_completed",
        ch("Bool"),
        comment="true when one of its events brought a journey to its success stage.",
    ),
    Column(
        "first_touchpoint",
        ch("Nullable(String)"),
        comment="The touchpoint of its first event; NULL when that had none.",
    ),
    Column(
        "last_touchpoint",
        ch("Nullable(String)"),
        comment="The touchpoint of its last event; NULL when that had none.",
    ),
    # Added later: rows written before are closed sessions (the only ones reported then).
    Column(
        "status",
        ch("LowCardinality(String)"),
        server_default=text("'closed'"),
        comment="open (it may still grow), closed (its gap passed) or merged (its events now "
        "count in another session): count `FINAL WHERE status != 'merged'`.",
    ),
    Column(
        "version",
        ch("UInt64"),
        comment="Grows with every report of the session; the highest is the current row (read "
        "with FINAL); 0 in rows written before it was added.",
    ),
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
    Column(
        "series_kind",
        ch("LowCardinality(String)"),
        comment="friction (per touchpoint and per channel), stage (per journey stage and "
        "channel) or volume (per source).",
    ),
    Column(
        "scope",
        ch("String"),
        comment="What the series counts: `web:/checkout` or `web:*` (friction), "
        "`purchase:checkout:web` or `purchase:checkout:*` (stage), `web:web-shop` (volume).",
    ),
    Column(
        "window_start",
        ch(TIME),
        comment="The window's start (event time, UTC, ms); windows are 5 minutes by default.",
    ),
    Column(
        "window_end",
        ch(TIME),
        comment="The window's end, exclusive (event time, UTC, ms).",
    ),
    Column(
        "version",
        ch("UInt64"),
        comment="Grows when late events change the window's counts; the highest is the current "
        "row (read with FINAL).",
    ),
    Column(
        "counts",
        ch("Map(String, Int64)"),
        comment="The counters by name: friction has exposures, one per signal and friction (all "
        "signals); stage has entered, progressed, dropped and `saw:<signal>@<channel>:"
        "<touchpoint>`; volume has events.",
    ),
    Column(
        "backfill",
        ch("Bool"),
        comment="true when the window holds only backfilled events: learned from, never "
        "alerted on.",
    ),
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
    Column(
        "incident_id",
        ch("String"),
        comment="The alert's id, the same in every version (made from its headline series and "
        "first window).",
    ),
    Column(
        "version",
        ch("UInt64"),
        comment="Grows with every change of the alert; the highest is the current row (read "
        "with FINAL).",
    ),
    Column(
        "status",
        ch("LowCardinality(String)"),
        comment="firing, resolved (3 windows in a row without evidence) or retracted (late data "
        "removed all its evidence).",
    ),
    Column(
        "kind",
        ch("LowCardinality(String)"),
        comment="friction_spike, dropoff_spike, entries_collapse or volume_collapse.",
    ),
    Column(
        "series_kind",
        ch("LowCardinality(String)"),
        comment="The headline series' kind: friction, dropoff, entries or volume.",
    ),
    Column(
        "scope",
        ch("String"),
        comment="The headline series' scope: `web:/checkout`, `web:*`, `purchase:checkout:web`, "
        "`web:web-shop`, ...",
    ),
    Column(
        "series_name",
        ch("String"),
        comment="The headline series' counter: a signal or friction (all signals), exposures, "
        "dropoff, entered or events.",
    ),
    Column(
        "place",
        ch("String"),
        comment="The scope as people say it: `web /checkout`, `web checkout` (a stage on one "
        "channel), `checkout (all channels)`, `web (all touchpoints)`.",
    ),
    Column(
        "started_at",
        ch(TIME),
        comment="The start of the first window of its evidence (event time, UTC, ms).",
    ),
    Column(
        "last_window_start",
        ch(TIME),
        comment="The start of the latest window that alerted (event time, UTC, ms).",
    ),
    Column(
        "last_window_end",
        ch(TIME),
        comment="The end of that window (event time, UTC, ms).",
    ),
    Column(
        "resolved_at",
        ch(MAYBE_TIME),
        comment="For status resolved: the end of the last of the normal windows (event time, "
        "UTC, ms); NULL otherwise.",
    ),
    Column(
        "late",
        ch("Bool"),
        comment="Raised from windows that had already closed: a late channel's export (store, "
        "call center) or late events revealed it after its windows were decided; started_at "
        "is still its event time.",
    ),
    Column(
        "found_late_by",
        ch("UInt32"),
        comment="For a late alert: how far (seconds) the watermark was past the end of its "
        "first window when it was raised; 0 otherwise.",
    ),
    Column("windows", ch("UInt32"), comment="How many windows alerted."),
    Column(
        "observed",
        ch("Int64"),
        comment="In the latest alerting window: the signals, drop-offs, entries or events counted.",
    ),
    Column(
        "expected",
        ch("Nullable(Float64)"),
        comment="The count the baseline expected for that window's volume; NULL when a fixed "
        "threshold fired before any baseline.",
    ),
    Column(
        "volume",
        ch("Int64"),
        comment="What observed is out of: exposures, or journeys leaving the stage; the count "
        "itself for collapses.",
    ),
    Column(
        "p_value",
        ch("Nullable(Float64)"),
        comment="The chance of seeing observed if the baseline held (Poisson tail; below 1e-6 "
        "to alert, 1e-9 for critical); NULL for a fixed threshold.",
    ),
    Column(
        "severity",
        ch("LowCardinality(String)"),
        comment="warning or critical: the highest of its evidence.",
    ),
    Column(
        "explanation",
        ch("String"),
        comment="One line for people: the series, observed against expected, and when.",
    ),
    Column(
        "team",
        ch("Nullable(String)"),
        comment="The owning team, from the routing file; NULL when the friction stage runs "
        "without one.",
    ),
    Column(
        "route",
        ch("Nullable(String)"),
        comment="The routing file's route that chose the team (`route[2] checkout`, or default); "
        "NULL without a routing file.",
    ),
    Column(
        "cause",
        ch("Nullable(String)"),
        comment="The likely cause in words (the signals that rose with it; for a stage, what "
        "share of the dropped journeys met which signal); NULL when none stands out.",
    ),
    Column(
        "related_series",
        ch("Array(String)"),
        comment="The other series grouped into this alert, as `<kind> <scope> <name>`.",
    ),
    Column(
        "related_ids",
        ch("Array(String)"),
        comment="Those series' own incident ids, in the same order.",
    ),
    Column(
        "examples",
        ch(
            "Array(Tuple(person_id String, at Float64, channel String, "
            "touchpoint Nullable(String), what String, "
            "journey_id Nullable(String)))"
        ),
        comment="Journeys that show the problem (3 by default): whose, when (epoch seconds, "
        "UTC), channel, touchpoint, what happened (the signals, or dropped off at a stage) and "
        "the journey if known.",
    ),
    Column(
        "last_alert_id",
        ch("String"),
        comment="The id of the detector's latest alert the incident stands on.",
    ),
    Column(
        "notify",
        ch("Bool"),
        comment="true when this version pages (the alert opened, resolved, was retracted or "
        "fired again, or a team not paged yet came to own one of its series); false for an "
        "update of its figures.",
    ),
    Column(
        "teams",
        ch("Array(String)"),
        comment="The teams that own its series now (routing file), the headline's first.",
    ),
    Column(
        "page",
        ch("Array(String)"),
        comment="The teams this version pages: every owner when it opens, a team that came "
        "to own one of its series while it fires, every team paged when it resolves.",
    ),
    Column(
        "paged_before",
        ch("Array(String)"),
        comment="The teams earlier versions paged (a silenced page counts: it was addressed).",
    ),
    Column(
        "change",
        ch("Nullable(String)"),
        comment="What this version pages about: opened, resolved, retracted, firing again, "
        "or in words the headline or a series that moved to another team; NULL for updates.",
    ),
    Column(
        "related",
        ch(
            "Array(Tuple(incident_id String, "
            "series Tuple(kind String, scope String, name String), kind String, "
            "status String, started_at String, observed Int64, expected Nullable(Float64), "
            "team Nullable(String)))"
        ),
        comment="The other series grouped into this alert in full: their incident, series, "
        "status, start (ISO 8601), observed and expected counts and owning team.",
    ),
    ReplacingMergeTree(
        version="version",
        order_by=("incident_id",),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="Friction and drop-off alerts, one per problem (read with FINAL for the latest "
    "version): status firing, resolved or retracted; the headline series with observed and "
    "expected, the related series it groups, owning team, likely cause and example journeys.",
)

alert_silences = Table(
    "alert_silences",
    metadata,
    Column("silence_id", ch("String"), comment="The silence's id, the same in every version."),
    Column(
        "version",
        ch("UInt64"),
        comment="Grows when the silence is written again (lifted early); read with FINAL.",
    ),
    Column(
        "target",
        ch("LowCardinality(String)"),
        comment="series (match is a glob over `<kind> <scope> <name>`) or route (a route's "
        "name in the routing file, `route[N]` or default).",
    ),
    Column("match", ch("String"), comment="The series pattern or the route name it silences."),
    Column("starts_at", ch(TIME), comment="When it began (wall clock, UTC)."),
    Column(
        "ends_at",
        ch(TIME),
        comment="When it ends (wall clock, UTC): pages of its series go out again from then.",
    ),
    Column("reason", ch("String"), comment="Why, as given to `journeys alerts silence`."),
    Column("created_by", ch("Nullable(String)"), comment="Who silenced (the OS user)."),
    ReplacingMergeTree(
        version="version",
        order_by=("silence_id",),
        settings={"non_replicated_deduplication_window": DEDUP_WINDOW},
    ),
    comment="Silences of alert pages: while one lasts, the alerts of its series or route are "
    "stored as always but page no one (`journeys alerts silence`).",
)

# Privacy operations (docs/concepts.md, Privacy): written by `journeys privacy erase`.
privacy_suppressions = Table(
    "privacy_suppressions",
    metadata,
    Column(
        "hash",
        ch("String"),
        comment="`<key id>:<hex>`: the keyed hash of an erased identifier key or `person:<id>`.",
    ),
    Column("request_id", ch("String"), comment="The erasure that added it (privacy_audit)."),
    Column("erased_at", ch("DateTime64(3, 'UTC')"), comment="When it was erased."),
    ReplacingMergeTree(order_by=("hash",)),
    comment="Erased persons, as hashes only: the sink drops rows that name one, the ingest "
    "stage events (from the privacy-suppressions topic).",
)

privacy_audit = Table(
    "privacy_audit",
    metadata,
    Column("request_id", ch("String"), comment="The erasure's id."),
    Column("requested_by", ch("String"), comment="Who asked (--requested-by, else the OS user)."),
    Column("requested_at", ch("DateTime64(3, 'UTC')"), comment="When the erasure ran."),
    Column(
        "subject_hash",
        ch("String"),
        comment="The keyed hash of what was asked for (an identifier key or a person id).",
    ),
    Column("persons", ch("UInt32"), comment="Person ids erased, merged persons included."),
    Column("identifiers", ch("UInt32"), comment="Identifier keys erased."),
    Column("removed", ch("Map(String, UInt64)"), comment="Rows removed, by table."),
    Column("alerts_examples", ch("UInt32"), comment="Example journeys removed from alerts."),
    Column("tombstones", ch("Map(String, UInt64)"), comment="Keys tombstoned, by topic."),
    Column("suppressed", ch("UInt32"), comment="Hashes added to privacy_suppressions."),
    ReplacingMergeTree(order_by=("request_id",)),
    comment="One record per erasure: who asked, when, what was removed and how much. It holds "
    "no erased value.",
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
    views = [
        f"{statement.strip()}\nCOMMENT {quote(VIEW_DOCS[name].comment)}"
        if name in VIEW_DOCS
        else statement.strip()
        for name, statement in VIEWS.items()
    ]
    return tables + views


def quote(text: str) -> str:
    """`text` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def column_comments() -> dict[str, dict[str, str]]:
    """The `COMMENT` of every column of every table and view, by table and column name. A
    view's come from `VIEW_DOCS`, over the comments of the table it passes columns through
    from; `journey_definitions` writes its own in its DDL (`sinks/definitions.py`)."""
    comments = {
        table.name: {column.name: column.comment or "" for column in table.columns}
        for table in metadata.tables.values()
    }
    for name, doc in VIEW_DOCS.items():
        passed = comments[doc.over] if doc.over is not None else {}
        comments[name] = {**passed, **doc.columns}
    return comments


def comment_changes(existing: Mapping[str, Mapping[str, str]]) -> list[str]:
    """`ALTER TABLE ... COMMENT COLUMN` statements, one per table or view, giving each column
    the comment this version has for it where the database's differs. `existing` maps a table's
    name to its columns' comments as the database has them (`system.columns`); tables and
    columns not in it are left alone. A view made again has none, so it gets all of them."""
    statements = []
    for table, wanted in column_comments().items():
        have = existing.get(table, {})
        changes = [
            f"COMMENT COLUMN `{column}` {quote(comment)}"
            for column, comment in wanted.items()
            if column in have and have[column] != comment
        ]
        if changes:
            statements.append(f"ALTER TABLE `{table}` " + ", ".join(changes))
    return statements


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
