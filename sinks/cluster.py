"""The schema on a ClickHouse cluster: this version's single-server DDL (`sinks/tables.py`,
`sinks/views.py`, `sinks/definitions.py`, `sinks/constraints.py`) turned into statements that
run `ON CLUSTER`.

Every table `T` becomes two:

- `T_local`, on every replica of every shard, with the Replicated form of its engine
  (`ReplacingMergeTree(version)` becomes `ReplicatedReplacingMergeTree(
  '/clickhouse/tables/{shard}/{database}/T_local', '{replica}', version)`; the server fills the
  macros) and the same ORDER BY, PARTITION BY, TTL and settings. It holds the rows.
- `T`, a `Distributed` table over `T_local` on every node. Analysts, the views and the sink
  keep using the plain names: a read of `T` reads every shard, an insert into `T` sends each
  row to the shard its sharding key picks.

The sharding key. `ReplacingMergeTree` collapses the versions of a row only within one shard,
so all versions of a row must reach the same shard: the key may only use the columns of the
table's ORDER BY (the row's identity). Where `person_id` is one of them (touchpoints,
identity_links, identity_audit) the key is `cityHash64(person_id)`: a person's rows sit on one
shard, so a query that filters on `person_id` can skip the other shards
(`optimize_skip_unused_shards`). Where a table has `person_id` but outside its ORDER BY
(journeys, transitions, drop-offs, retractions, sessions, identity_overrides) a row's person
can change between its versions when identities merge; sharding by it would put a journey's
versions on two shards and `FINAL` would count the journey twice. Those tables, and the ones
without a person, are sharded by a hash of their ORDER BY columns.

Joins in the views. A view that reads a Distributed table and joins another Distributed table
is a "double-distributed" query: ClickHouse refuses it by default (`distributed_product_mode =
'deny'`), and with `'local'` it would join each shard's rows only with the same shard's, which
is right only when both sides are sharded on the join key. No view here joins two tables on a
common sharding key (touchpoints are joined with identity_overrides on the identifier,
journeys with transitions and touchpoints on the starting event, sessions with touchpoints on
a stamped person), so on a cluster every view's JOIN becomes `GLOBAL JOIN` and every `IN
(SELECT ...)` `GLOBAL IN`: the initiating node computes the right side once and sends it to
every shard. That is what `distributed_product_mode = 'global'` would do, written into the
views so they answer the same on any user profile. What GLOBAL costs is the right side's
size: small for touchpoints_latest (the overrides) and journey_stages (the definitions), but
channel_switches ships a person map and dropoff_paths the paths of the drop-offs asked about,
both growing with the data; on a large cluster narrow those (`journeys query paths` filters
the drop-offs before any touchpoint is joined).

ALTERs get `ON CLUSTER` too: a new column goes to `T_local` and to `T` (a Distributed table
has its own column list), a comment to both, a row check (`CHECK` constraint) only to
`T_local`, where rows are written.

Everything but `migrate_cluster` is text in, text out; `migrate_cluster` applies the
statements through a client, as `sinks.clickhouse.migrate` does on one server.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from sinks.clickhouse import existing_columns
from sinks.constraints import row_checks
from sinks.tables import added_columns, comment_changes, ddl, metadata

if TYPE_CHECKING:
    from clickhouse_connect.driver.query import QueryResult

log = logging.getLogger(__name__)

LOCAL_SUFFIX = "_local"
ZOOKEEPER_PATH = "/clickhouse/tables/{shard}/{database}/"
PERSON_COLUMN = "person_id"

# On a single server `non_replicated_deduplication_window` keeps the last DEDUP_WINDOW insert
# tokens. Replicated tables keep theirs in Keeper under `replicated_deduplication_window`, and
# also forget them after `replicated_deduplication_window_seconds` (an hour by default in
# recent versions): a batch re-sent after a sink was down longer than that would no longer be
# recognised by its token (`insert_deduplication_token` works the same for Replicated tables).
# A week makes the count the limit, as on a single server.
DEDUP_WINDOW_SECONDS = int(timedelta(days=7).total_seconds())

# Cluster names as they are written in the servers' remote_servers configuration.
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS\s+`?(\w+)`?\s*")
_CREATE_VIEW = re.compile(r"CREATE OR REPLACE VIEW\s+`?(\w+)`?\s+AS\b")
_ENGINE = re.compile(r"\b(?:Engine|ENGINE\s*=)\s+(\w*MergeTree)\b(?:\(([^()]*)\))?")
_ORDER_BY = re.compile(r"\bORDER BY\s+(?:\(([^()]*)\)|(`?\w+`?))")
_TABLE_COMMENT = re.compile(r"\s*(COMMENT\s+'(?:[^'\\]|''|\\.)*')\s*$")
_ALTER_TABLE = re.compile(r"ALTER TABLE\s+`?(\w+)`?\s+")
# Joins that read another table (not ARRAY JOIN, which unfolds a column of the same row).
_JOIN = re.compile(
    r"(?<!GLOBAL )(?<!ASOF )\b((?:ASOF\s+)?(?:LEFT|INNER|RIGHT|FULL|CROSS)\s+JOIN)\b"
)
_IN_SELECT = re.compile(r"(?<!GLOBAL )\b((?:NOT\s+)?IN)(\s*\(\s*SELECT)\b")


def cluster_name(name: str) -> str:
    """`name` if it can be a cluster's name in `ON CLUSTER`, else a `ValueError` saying so."""
    if not _CLUSTER_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a cluster name: letters, digits, '_', '.' and '-' only, as in "
            "the servers' remote_servers configuration"
        )
    return name


def local_name(table: str) -> str:
    """The name of the table on each shard that holds `table`'s rows."""
    return table + LOCAL_SUFFIX


def cluster_ddl(cluster: str) -> list[str]:
    """This version's `ddl()` for the cluster `cluster`: for each table its `_local` Replicated
    table and its Distributed table, then the views, all `ON CLUSTER`, in the same order (a
    view is made after the tables it reads)."""
    cluster = cluster_name(cluster)
    statements: list[str] = []
    for statement in ddl():
        if statement.startswith("CREATE TABLE"):
            statements.extend(clustered_table(statement, cluster))
        elif statement.startswith("CREATE OR REPLACE VIEW"):
            statements.append(clustered_view(statement, cluster))
        else:
            raise ValueError(f"no cluster form for: {statement[:80]}")
    return statements


def clustered_table(statement: str, cluster: str) -> list[str]:
    """A single-server `CREATE TABLE IF NOT EXISTS T ... ENGINE = XMergeTree ...` as the two
    statements that make it on `cluster`: `T_local` (Replicated) and `T` (Distributed)."""
    statement = statement.strip()
    header = _CREATE_TABLE.match(statement)
    if header is None:
        raise ValueError(f"not a CREATE TABLE IF NOT EXISTS statement: {statement[:80]}")
    table = header.group(1)
    local = local_name(table)
    body = statement[header.end() :]
    engine = list(_ENGINE.finditer(body))
    if not engine:
        raise ValueError(f"{table}: no MergeTree engine to replicate")
    last = engine[-1]  # a column comment may say "Engine" too; the engine clause comes last
    name, arguments = last.group(1), (last.group(2) or "").strip()
    if name.startswith("Replicated"):
        raise ValueError(f"{table}: already {name}")
    engine_arguments = [quote(ZOOKEEPER_PATH + local), quote("{replica}")]
    if arguments:  # the version column of ReplacingMergeTree(version), and the like
        engine_arguments.append(arguments)
    replicated = f"ENGINE = Replicated{name}({', '.join(engine_arguments)})"
    clauses = replicated_settings(body[last.end() :])
    comment = _TABLE_COMMENT.search(body)
    create_local = (
        f"CREATE TABLE IF NOT EXISTS `{local}` ON CLUSTER `{cluster}` "
        f"{body[: last.start()].rstrip()} {replicated}{clauses}"
    )
    create_distributed = (
        f"CREATE TABLE IF NOT EXISTS `{table}` ON CLUSTER `{cluster}` AS `{local}` "
        f"ENGINE = Distributed({quote(cluster)}, currentDatabase(), {quote(local)}, "
        f"{sharding_key(order_by(body[last.end() :]))})"
        + (f" {comment.group(1)}" if comment else "")
    )
    return [create_local, create_distributed]


def replicated_settings(clauses: str) -> str:
    """The clauses after a single-server engine (ORDER BY, PARTITION BY, TTL, SETTINGS,
    COMMENT), kept, with the non-replicated deduplication window replaced by the replicated
    one of the same size (and its time limit lifted, see DEDUP_WINDOW_SECONDS)."""
    return re.sub(
        r"\bnon_replicated_deduplication_window\s*=\s*(\d+)",
        lambda m: (
            f"replicated_deduplication_window = {m.group(1)}, "
            f"replicated_deduplication_window_seconds = {DEDUP_WINDOW_SECONDS}"
        ),
        clauses,
    ).rstrip()


def order_by(clauses: str) -> list[str]:
    """The columns of a statement's ORDER BY (expressions kept as written)."""
    found = _ORDER_BY.search(clauses)
    if found is None:
        raise ValueError("no ORDER BY: a MergeTree table needs one")
    listed = found.group(1) if found.group(1) is not None else found.group(2)
    return [column.strip().strip("`") for column in listed.split(",") if column.strip()]


def sharding_key(key: Sequence[str]) -> str:
    """The Distributed table's sharding key for a table ordered by `key`: the person where the
    person is part of a row's identity, else the whole identity (see the module's docstring:
    every version of a row must reach the same shard)."""
    if PERSON_COLUMN in key:
        return f"cityHash64({PERSON_COLUMN})"
    return "cityHash64(" + ", ".join(f"`{column}`" for column in key) + ")"


def clustered_view(statement: str, cluster: str) -> str:
    """A `CREATE OR REPLACE VIEW` made on every node of `cluster`, its joins and `IN`
    subqueries GLOBAL (the module's docstring says why)."""
    statement = statement.strip()
    header = _CREATE_VIEW.match(statement)
    if header is None:
        raise ValueError(f"not a CREATE OR REPLACE VIEW statement: {statement[:80]}")
    body = _IN_SELECT.sub(r"GLOBAL \1\2", _JOIN.sub(r"GLOBAL \1", statement[header.end() :]))
    return f"CREATE OR REPLACE VIEW `{header.group(1)}` ON CLUSTER `{cluster}` AS{body}"


def on_cluster(statement: str, cluster: str, *, local: bool) -> str:
    """A single-server `ALTER TABLE T ...` run on every node of `cluster`, on `T_local` if
    `local`, else on `T` itself."""
    found = _ALTER_TABLE.match(statement)
    if found is None:
        raise ValueError(f"not an ALTER TABLE statement: {statement[:80]}")
    table = local_name(found.group(1)) if local else found.group(1)
    return f"ALTER TABLE `{table}` ON CLUSTER `{cluster}` {statement[found.end() :]}"


def cluster_added_columns(
    local: Mapping[str, Sequence[str]], distributed: Mapping[str, Sequence[str]], cluster: str
) -> list[str]:
    """`added_columns` on the cluster: each table's new columns added to `T_local` (from the
    columns `local` says it has, keyed by the plain name) and to `T` (`distributed`)."""
    return [on_cluster(s, cluster, local=True) for s in added_columns(local)] + [
        on_cluster(s, cluster, local=False) for s in added_columns(distributed)
    ]


def cluster_comment_changes(
    local: Mapping[str, Mapping[str, str]],
    distributed: Mapping[str, Mapping[str, str]],
    cluster: str,
) -> list[str]:
    """`comment_changes` on the cluster: for the `_local` tables (`local`, keyed by the plain
    name) and for the Distributed tables and the views (`distributed`)."""
    tables = set(metadata.tables)
    return [
        on_cluster(s, cluster, local=True)
        for s in comment_changes({t: c for t, c in local.items() if t in tables})
    ] + [on_cluster(s, cluster, local=False) for s in comment_changes(distributed)]


def cluster_row_checks(cluster: str) -> list[str]:
    """`row_checks` on the cluster: on the `_local` tables, where inserts land (a Distributed
    table has no constraints; the shard refuses the row and the insert fails)."""
    return [on_cluster(s, cluster, local=True) for s in row_checks()]


def quote(text: str) -> str:
    """`text` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


class SchemaClient(Protocol):
    """What `migrate_cluster` uses of a clickhouse-connect client."""

    def command(self, cmd: str) -> object: ...

    def query(self, query: str) -> QueryResult: ...


def migrate_cluster(client: SchemaClient, cluster: str) -> int:
    """Bring every node of `cluster` to this version's schema, as `sinks.clickhouse.migrate`
    does on one server: create what is missing, add the columns older tables lack, give the
    `_local` tables their row checks, (re)create the views, then set the comments that differ
    (what the database has is read from `system.columns` of the node `client` talks to).
    Idempotent; returns the statements applied."""
    statements = cluster_ddl(cluster)
    views = [s for s in statements if s.startswith("CREATE OR REPLACE VIEW")]
    for statement in statements:
        if statement not in views:
            client.command(statement)
    local, distributed = split_existing(existing_columns(client))
    added = cluster_added_columns(
        {t: list(c) for t, c in local.items()},
        {t: list(c) for t, c in distributed.items()},
        cluster,
    )
    for statement in added:
        log.info("schema: %s", statement)
        client.command(statement)
    checks = cluster_row_checks(cluster)
    for statement in checks:
        client.command(statement)
    for statement in views:
        client.command(statement)
    commented = cluster_comment_changes(*split_existing(existing_columns(client)), cluster)
    for statement in commented:
        log.debug("schema: %s", statement)
        client.command(statement)
    return len(statements) + len(added) + len(checks) + len(commented)


def split_existing(
    existing: Mapping[str, Mapping[str, str]],
) -> tuple[dict[str, Mapping[str, str]], dict[str, Mapping[str, str]]]:
    """The columns of the `_local` tables keyed by their plain name, and those of every other
    table and view (the Distributed tables have the plain names)."""
    local = {
        name.removesuffix(LOCAL_SUFFIX): columns
        for name, columns in existing.items()
        if name.endswith(LOCAL_SUFFIX)
    }
    rest = {name: columns for name, columns in existing.items() if not name.endswith(LOCAL_SUFFIX)}
    return local, rest
