"""Fixtures of the chaos suite: a broker, the input every run shares, and the fault-free
reference run that every fault run is compared with.

`make test` runs the short version (a smaller input, two scenarios); `make chaos` sets
CHAOS_FULL=1 for the full one (>= 100,000 events, every scenario CHAOS_RUNS times, 3 by
default) and writes the results table to .local/chaos/results.md (the short version's to
results-short.md)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from deploy.kafka_admin import ensure_topics
from deploy.local.broker import LocalBroker
from schemas.settings import LocalBrokerSettings, Settings

from .feed import Input, build
from .results import Snapshot

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("CHAOS_FULL") == "1"
RUNS = int(os.environ.get("CHAOS_RUNS", "3")) if FULL else 1
VOLUME = int(os.environ.get("CHAOS_EVENTS", "100000")) if FULL else 4_000
# Events a second handed to the publisher: slower than the stages' backlog builds up, so a
# fault lands while every stage has work in hand and the feed still runs.
RATE = float(os.environ.get("CHAOS_RATE", "2000" if FULL else "300"))
RESULTS = ROOT / ".local" / "chaos"
ROWS, TABLE = (
    (RESULTS / "results.jsonl", RESULTS / "results.md")
    if FULL
    else (RESULTS / "results-short.jsonl", RESULTS / "results-short.md")
)
PORT = 19530  # the suite's own broker when no broker is given (ports 19530-19549)


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    given = os.environ.get("JOURNEYS_KAFKA__BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    broker = LocalBroker(
        LocalBrokerSettings(instance="chaos", port=PORT, controller_port=PORT + 1), ROOT / ".local"
    )
    started = broker.start()
    try:
        yield broker.bootstrap
    finally:
        if started:
            broker.stop()


def settings_for(bootstrap: str, folder: Path) -> Settings:
    """Settings for one run: its own topics, groups, data folder and chDB."""
    run = uuid.uuid4().hex[:8]
    made = Settings(
        data_dir=folder / "data",
        kafka={"bootstrap_servers": bootstrap},
        topics={"prefix": f"c{run}.", "partitions": 4},
        clickhouse={"dsn": f"chdb://{folder / 'clickhouse'}", "http": {"port": 0}},
        # No wall-clock watermarks: the input closes its own time with heartbeats, so no
        # outcome depends on how long a step took.
        processor={"worker_id": f"w{run}", "metrics_port": None, "idle_after_seconds": 0},
        log_format="text",
    )
    ensure_topics(made)
    return made


@pytest.fixture(scope="session")
def feed(tmp_path_factory: pytest.TempPathFactory, bootstrap: str) -> Input:
    folder = tmp_path_factory.mktemp("chaos-input")
    return build(VOLUME, folder, settings_for(bootstrap, folder / "build"))


@dataclass
class Reference:
    """The fault-free run of the same input, run in a thread of its own: the short version
    runs it beside its one fault run (to stay short); the full one waits for it first, so no
    fault run shares the machine with it."""

    thread: threading.Thread
    found: list[Snapshot] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def get(self) -> Snapshot:
        self.thread.join()
        if self.errors:
            raise self.errors[0]
        return self.found[0]


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, bootstrap: str, feed: Input) -> Reference:
    from .scenarios import Run, no_fault

    folder = tmp_path_factory.mktemp("chaos-reference")

    def run_it() -> None:
        try:
            run = Run(settings_for(bootstrap, folder), folder, feed, RATE)
            run.execute(no_fault)
            assert run.found is not None
            found = run.found
            record("reference (no fault)", run=1, sent=feed.sent, got=found, differences={})
            # Each event once in it too.
            assert (found.rows, found.distinct, found.final) == (feed.sent,) * 3
            pending.found.append(found)
        except BaseException as exc:  # raised by get()
            pending.errors.append(exc)

    pending = Reference(threading.Thread(target=run_it, name="chaos-reference"))
    pending.thread.start()
    if FULL:
        pending.get()
    return pending


def record(
    scenario: str,
    *,
    run: int,
    sent: int,
    got: Snapshot,
    differences: dict[str, int],
    resume: float | None = None,
) -> None:
    """One row of the results table (ROWS, then TABLE at the end of the session)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    row = {
        "scenario": scenario,
        "run": run,
        "sent": sent,
        "counted": got.rows,
        "distinct": got.distinct,
        "final": got.final,
        "differences": differences,
        "resume_seconds": None if resume is None else round(resume, 1),
    }
    with open(ROWS, "ab") as out:
        out.write(orjson.dumps(row) + b"\n")


def pytest_sessionstart(session: pytest.Session) -> None:
    ROWS.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS.exists():
        return
    table = results_table([orjson.loads(line) for line in ROWS.read_bytes().splitlines()])
    TABLE.write_text(table + "\n")
    terminalreporter.write_sep("-", "chaos results")
    terminalreporter.write_line(table)


def results_table(rows: list[dict[str, Any]]) -> str:
    """Scenario, runs, sent, counted (plain / FINAL), differences, resume times."""
    lines = [
        "| scenario | runs | sent | counted (plain / FINAL / distinct) | differences "
        "| resume (s) |",
        "|---|---|---|---|---|---|",
    ]
    by: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by.setdefault(str(row["scenario"]), []).append(row)
    for scenario, runs in by.items():
        sent = ", ".join(sorted({f"{r['sent']:,}" for r in runs}))
        counted = "; ".join(f"{r['counted']:,} / {r['final']:,} / {r['distinct']:,}" for r in runs)
        diffs = "; ".join(
            ", ".join(f"{k} {v}" for k, v in r["differences"].items()) or "none" for r in runs
        )
        resumes = [r["resume_seconds"] for r in runs if r["resume_seconds"] is not None]
        resume = ", ".join(str(s) for s in resumes) or "-"
        lines.append(f"| {scenario} | {len(runs)} | {sent} | {counted} | {diffs} | {resume} |")
    return "\n".join(lines)
