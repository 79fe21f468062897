"""Runs SQL through the official ClickHouse JDBC driver, so tests can check that our ClickHouse
HTTP interface serves Java tools as a ClickHouse server would.

The driver (com.clickhouse:clickhouse-jdbc, fetched by tests/integration/jdbc/pom.xml into
.local/jdbc-jars/) runs with its default settings, compression included, inside the small
Java program tests/integration/jdbc/QueryClient.java (compiled into .local/jdbc/). Both are
made by `make setup`. Each call starts one JVM (about half a second) and runs every statement,
in order, on one JDBC connection.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JARS = ROOT / ".local" / "jdbc-jars"
CLASSES = ROOT / ".local" / "jdbc"
MAIN_CLASS = "QueryClient"

JdbcValue = str | int | float | bool | None


@dataclass(frozen=True)
class JdbcBatch:
    """A PreparedStatement run as one batch: `sql` has `?` placeholders (for example
    `INSERT INTO t (a, b) VALUES (?, ?)`), and each row binds them in order with addBatch()."""

    sql: str
    rows: Sequence[Sequence[JdbcValue]]


@dataclass(frozen=True)
class JdbcResult:
    """One statement's outcome: its result set (every value as the driver's getString(), or
    None for NULL), or, for a statement without one, the driver's update count. update_count
    is -1 for a result set, and -2 (SUCCESS_NO_INFO) for a batch whose count is unknown."""

    columns: list[str]
    rows: list[list[str | None]]
    update_count: int


@dataclass
class JdbcError(Exception):
    """The client failed: the driver's error (with the server's `Code: N. DB::Exception: ...`
    when the server sent one), after the results of the statements that went before it."""

    message: str
    results: list[JdbcResult] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


def client_missing() -> str | None:
    """Why the JDBC client cannot run here, or None when it is built."""
    if shutil.which("java") is None:
        return "java is not installed (Java 17 runs the ClickHouse JDBC driver)"
    if not (JARS / ".complete").exists() or not (CLASSES / f"{MAIN_CLASS}.class").exists():
        return f"the JDBC client is not built in {CLASSES} and {JARS}: run `make setup`"
    return None


def run_jdbc(
    url: str,
    user: str,
    password: str,
    statements: Sequence[str | JdbcBatch],
    timeout: float = 120.0,
) -> list[JdbcResult]:
    """Run `statements` through the JDBC driver on one connection to `url` (for example
    `jdbc:clickhouse://127.0.0.1:8123/default`). Raises JdbcError on the first failure."""
    lines = _lines(statements)
    missing = client_missing()
    if missing is not None:
        raise JdbcError(missing)
    done = subprocess.run(
        ["java", "-cp", f"{CLASSES}:{JARS}/*", MAIN_CLASS, url, user, password],
        input="".join(lines),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    return _parse(done.stdout, done.stderr, done.returncode)


def _lines(statements: Sequence[str | JdbcBatch]) -> list[str]:
    """The client's input: one statement a line; a batch's rows follow it as `> [json]`."""
    lines = []
    for statement in statements:
        sql = statement.sql if isinstance(statement, JdbcBatch) else statement
        if "\n" in sql or "\r" in sql or sql.startswith(">"):
            raise ValueError(f"write each statement on one line: {sql!r}")
        lines.append(sql + "\n")
        if isinstance(statement, JdbcBatch):
            if not statement.rows:
                raise ValueError(f"a batch needs at least one row: {sql!r}")
            lines.extend(f"> {json.dumps(list(row))}\n" for row in statement.rows)
    return lines


def _parse(stdout: str, stderr: str, returncode: int) -> list[JdbcResult]:
    results: list[JdbcResult] = []
    for line in stdout.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise JdbcError(f"JDBC client printed {line!r}; stderr: {stderr}", results) from None
        if "error" in item:
            raise JdbcError(str(item["error"]), results)
        results.append(JdbcResult(item["columns"], item["rows"], item["update_count"]))
    if returncode != 0:
        raise JdbcError(f"JDBC client exited with {returncode}; stderr: {stderr}", results)
    return results
