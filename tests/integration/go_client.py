"""Runs SQL through clickhouse-go v2, the client of Grafana's ClickHouse data source, with the
options that data source uses over HTTP (tests/integration/clickhouse_go/main.go, built by
`make setup` into .local/clickhouse-go/). Each call is one process and one connection."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / ".local" / "clickhouse-go" / "clickhouse-go"


@dataclass(frozen=True)
class GoResult:
    columns: list[str]
    types: list[str]
    rows: list[list[str | None]]  # every value as Go prints it, None for NULL


class GoClientError(Exception):
    """What clickhouse-go reported, with the results of the statements before it."""

    def __init__(self, message: str, results: list[GoResult]) -> None:
        super().__init__(message)
        self.message = message
        self.results = results


def run_clickhouse_go(
    address: str, user: str, password: str, statements: Sequence[str]
) -> list[GoResult]:
    """Each statement's result, in order; GoClientError at the first that fails."""
    if not BINARY.exists():
        raise GoClientError(f"{BINARY} is missing: run `make setup`", [])
    if any("\n" in statement for statement in statements):
        raise ValueError("clickhouse-go reads one statement per line")
    done = subprocess.run(
        [str(BINARY), address, user, password],
        input="\n".join(statements) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    results: list[GoResult] = []
    for line in done.stdout.splitlines():
        found = json.loads(line)
        if "error" in found:
            raise GoClientError(found["error"], results)
        results.append(GoResult(found["columns"], found["types"] or [], found["rows"]))
    if done.returncode != 0 or len(results) != len(statements):
        raise GoClientError(
            f"clickhouse-go exited {done.returncode}: {done.stderr[-500:]}", results
        )
    return results
