"""Opening ClickHouse to answer a question, and asking it: the one module of `deploy.query`
that does I/O. Reads go through `sinks.clickhouse.reading` (the live interface of a running
sink, else the folder or server itself) and never create anything: a path that holds no
journeys tables is a one-line `QueryError`, not a new empty database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from deploy.query.answers import Answer
from deploy.query.options import QueryError
from deploy.query.questions import Query
from sinks.clickhouse import reading
from sinks.http.discovery import folder_of

# What the pipeline's schema makes (`journeys db migrate`, the sink on start): the tables the
# stages fill, and the analysts' views over them.
TABLES = ("touchpoints", "journeys", "journey_transitions", "dropoffs", "identity_audit")
VIEWS = ("journey_definitions", "journey_stages", "dropoff_paths", "person_timeline")


def shown(dsn: str) -> str:
    """A DSN without its credentials."""
    return dsn.rsplit("@", maxsplit=1)[-1]


@contextmanager
def open_journeys(dsn: str) -> Iterator[Client]:
    """A client on the journeys database of `dsn`, checked to hold the pipeline's schema."""
    folder = folder_of(dsn)
    if folder is not None and not folder.is_dir():
        raise QueryError(
            f"no ClickHouse data at {folder}: run the pipeline there first, or point "
            "JOURNEYS_CLICKHOUSE__DSN at its data"
        )
    with reading(dsn) as client:
        have = {
            name
            for (name,) in client.query(
                "SELECT name FROM system.tables WHERE database = currentDatabase()"
            ).result_rows
        }
        if not have.intersection(TABLES):
            raise QueryError(
                f"ClickHouse at {shown(dsn)} holds no journeys tables: point "
                "JOURNEYS_CLICKHOUSE__DSN at the pipeline's data (or run `journeys db migrate`)"
            )
        missing = [name for name in (*TABLES, *VIEWS) if name not in have]
        if missing:
            raise QueryError(
                f"ClickHouse at {shown(dsn)} lacks {', '.join(missing)}: an older schema; "
                "run `journeys db migrate`"
            )
        yield client


def ask(client: Client, query: Query, readonly: bool = False) -> Answer:
    """Run one query; a ClickHouse error becomes a one-line `QueryError`."""
    settings = {"readonly": 1} if readonly else None
    try:
        result = client.query(query.sql, parameters=query.parameters, settings=settings)
    except ClickHouseError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
        raise QueryError(f"ClickHouse: {first[:300]}") from None
    return Answer(list(result.column_names), [tuple(row) for row in result.result_rows])
