"""The JDBC client that tests drive the official ClickHouse JDBC driver with is built and runs.

No skip: without it, the tests of our ClickHouse HTTP interface against Java tools could not run.
"""

from __future__ import annotations

import socket

import pytest

from .jdbc_client import JdbcBatch, JdbcError, client_missing, run_jdbc


def test_the_jdbc_client_is_built() -> None:
    missing = client_missing()
    assert missing is None, missing


def test_a_refused_connection_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now: the driver loads, connects, fails, and says so.
    with pytest.raises(JdbcError, match=r"(?i)connect"):
        run_jdbc(f"jdbc:clickhouse://127.0.0.1:{port}/default", "default", "", ["SELECT 1"])


@pytest.mark.parametrize(
    "statement",
    ["SELECT 1\nFROM one", "> [1]", JdbcBatch("INSERT INTO t VALUES (?)", [])],
)
def test_statements_the_client_cannot_carry_are_refused(statement: str | JdbcBatch) -> None:
    with pytest.raises(ValueError):
        run_jdbc("jdbc:clickhouse://127.0.0.1:1/default", "default", "", [statement])
