"""Opening ClickHouse through one DSN, applying the schema, and inserting batches.

`chdb:///path` opens the embedded engine in this process; `http(s)://...` a server. The same
client API serves both, so nothing here branches on which one it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from schemas.settings import absolute_chdb_dsn
from sinks.constraints import row_checks
from sinks.http.discovery import folder_of
from sinks.tables import added_columns, comment_changes, ddl, metadata

if TYPE_CHECKING:
    from clickhouse_connect.driver.query import QueryResult

log = logging.getLogger(__name__)

DSN_SETTING = "JOURNEYS_CLICKHOUSE__DSN"

# JSON fields arrive as the stages wrote them; ClickHouse parses them (no per-row Python).
JSON_INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,  # chDB defaults to 1, which skips token deduplication
    "insert_deduplicate": 1,
    "input_format_json_read_numbers_as_strings": 1,
    "input_format_json_read_bools_as_strings": 1,
    "input_format_skip_unknown_fields": 1,
    "date_time_input_format": "best_effort",
}


# On a cluster (`clickhouse.cluster`) the plain table names are Distributed tables
# (sinks/cluster.py). The insert deduplication token reaches the shards either way (an insert
# sent on to a shard carries the query's settings, and so does each file a background insert
# queues), but a background insert returns once the rows are queued on the node the sink talks
# to: the sink would commit its Kafka offsets before any shard has the rows, a shard refusing
# a row (a row check, code 469) would fail in that queue, retried there, instead of reaching
# the sink's refused-batch path, and queued files may go out together as one block under one
# token. In the foreground the insert returns when every shard has written its rows, or fails.
CLUSTER_INSERT_SETTINGS: dict[str, Any] = {"distributed_foreground_insert": 1}


class ClickHouseUnreachableError(RuntimeError):
    """ClickHouse did not answer; the message names the setting to change."""


class NoJourneysDataError(ClickHouseUnreachableError):
    """A reader was pointed where no journeys database is; the message names the setting."""


def connect(dsn: str, *, create: bool = True) -> Client:
    """A client for `dsn`, or a one-line error naming JOURNEYS_CLICKHOUSE__DSN. An embedded
    folder that does not exist is made only if `create` (commands that write: the sink,
    `journeys db migrate`); a reader gets `NoJourneysDataError` instead of a new empty one."""
    dsn = absolute_chdb_dsn(dsn, Path.cwd())
    folder = folder_of(dsn)
    if folder is not None and not folder.is_dir():
        if not create:
            raise NoJourneysDataError(
                f"no ClickHouse data at {folder}: run the pipeline there first, or point "
                f"{DSN_SETTING} at its data"
            )
        log.info("ClickHouse: a new embedded database at %s", folder)
    try:
        client = clickhouse_connect.get_client(dsn=dsn)
        client.command("SELECT 1")
    except Exception as exc:
        shown = dsn.rsplit("@", maxsplit=1)[-1]
        raise ClickHouseUnreachableError(
            f"ClickHouse is not reachable at {shown} ({str(exc).splitlines()[0][:200]}); "
            f"set {DSN_SETTING}"
        ) from None
    return client


@contextmanager
def session(dsn: str, *, create: bool = True) -> Iterator[Client]:
    """A client that is closed afterwards. chDB allows one data folder per process at a time,
    so code that opens several (tests, tools) must close each before the next."""
    client = connect(dsn, create=create)
    try:
        yield client
    finally:
        client.close()


def reader_dsn(dsn: str) -> str:
    """The DSN a reader should open for `dsn`: the live HTTP interface of the process that owns
    an embedded folder when one serves it (chDB allows one process per folder), else `dsn`."""
    from sinks.http.discovery import live_interface

    return live_interface(dsn) or dsn


@contextmanager
def reading(dsn: str) -> Iterator[Client]:
    """A closed-afterwards client for reading `dsn` while the pipeline may be writing it:
    reports, queries, the page and the benches open ClickHouse through this. It never creates
    anything: a folder that does not exist, or a database without any of the pipeline's
    tables, is a one-line `NoJourneysDataError`."""
    with session(reader_dsn(dsn), create=False) as client:
        if not _holds_journeys(client):
            raise NoJourneysDataError(
                f"ClickHouse at {dsn.rsplit('@', maxsplit=1)[-1]} holds no journeys tables: "
                f"point {DSN_SETTING} at the pipeline's data (or run `journeys db migrate`)"
            )
        yield client


def _holds_journeys(client: Client) -> bool:
    names = ", ".join(f"'{table}'" for table in metadata.tables)
    found = client.query(
        "SELECT count() FROM system.tables "
        f"WHERE database = currentDatabase() AND name IN ({names})"
    )
    return bool(found.result_rows[0][0])


def migrate(client: Client) -> int:
    """Bring the database to this version's schema: create the tables that are missing, add
    the columns an older version's tables lack, (re)create the views, and give every column
    of every table and view its comment where the database's differs (a view made again has
    none), and give the stage-fed tables their row checks (`sinks/constraints.py`).
    Idempotent; returns the statements applied."""
    statements = ddl()
    views = [s for s in statements if s.startswith("CREATE OR REPLACE VIEW")]
    for statement in statements:
        if statement not in views:
            client.command(statement)
    added = added_columns(
        {table: list(columns) for table, columns in existing_columns(client).items()}
    )
    for statement in added:
        log.info("schema: %s", statement)
        client.command(statement)
    checks = row_checks()
    for statement in checks:
        client.command(statement)
    for statement in views:
        client.command(statement)
    commented = comment_changes(existing_columns(client))
    for statement in commented:
        log.debug("schema: %s", statement)
        client.command(statement)
    return len(statements) + len(added) + len(checks) + len(commented)


class Queries(Protocol):
    """What reading the schema uses of a clickhouse-connect client."""

    def query(self, query: str) -> QueryResult: ...


def existing_columns(client: Queries) -> dict[str, dict[str, str]]:
    """Each table's and view's columns, in order, with their comments, as the database has
    them."""
    rows = client.query(
        "SELECT table, name, comment FROM system.columns WHERE database = currentDatabase() "
        "ORDER BY table, position"
    ).result_rows
    existing: dict[str, dict[str, str]] = {}
    for table, name, comment in rows:
        existing.setdefault(table, {})[name] = comment
    return existing


def insert_into_cluster(client: Client) -> Client:
    """`client`, its inserts made with CLUSTER_INSERT_SETTINGS from now on: for the sink and
    the dead-letter replay when `clickhouse.cluster` is set."""
    for key, value in CLUSTER_INSERT_SETTINGS.items():
        client.set_client_setting(key, value)
    return client


def insert_json_rows(client: Client, table: str, rows_json: bytes, token: str) -> int:
    """Insert a JSON array of rows as one block, deduplicated by `token`; rows written."""
    settings = {**JSON_INSERT_SETTINGS, "insert_deduplication_token": token}
    summary = client.raw_insert(table, insert_block=rows_json, fmt="JSONEachRow", settings=settings)
    return int(summary.written_rows)
