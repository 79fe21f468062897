"""The analysts' questions at scale: `journeys query funnel`, `dropoffs` and `paths` over 13
million touchpoints and 2 million journeys in chDB, beside plain counts in the same run.

The data is made afresh in a temporary folder by `INSERT ... SELECT` (tests/bench/analyst_data.py;
about a minute on 2 idle cores, several when they are shared); nothing is kept between runs.
Each question is the SQL `journeys query` runs (`deploy.query.questions`, asked through
`deploy.query.reader.ask`), with the command's defaults (every definition, no range, no
breakdown); the catalog query is there too because every funnel, dropoffs and paths command
runs it first. Each runs `repeats` times in rounds, straight on the embedded engine (what
`journeys query` opens when no sink serves the folder) and then through the HTTP interface
served in this process (what it opens while the sink runs), so load that comes and goes on a
shared machine touches both alike. Reported: the median (and range) of each, its ratio to a
plain `SELECT count() FROM touchpoints` (answered from part metadata) and to
`SELECT count() FROM journeys FINAL` (which reads the table), the interface's overhead, and the
process's peak memory while it ran (`peak_rss`: the highest resident set size over its runs,
and how far it rose above the size at the start of the run, after the engine returned the
memory it kept from earlier queries; the engine runs in this process, so the rise is what the
question costs the sink that serves it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from deploy.query import questions
from deploy.query.options import TimeRange
from deploy.query.questions import Query
from deploy.query.reader import ask
from schemas.settings import ClickHouseHttpSettings
from sinks.clickhouse import migrate, reader_dsn, session
from sinks.http.server import HttpInterface
from tests.process_memory import memory_mb

from .analyst_data import Scale, channel_shares, generate, table_rows
from .report import Result, render

EVERYTHING = TimeRange()
COUNT = "count() touchpoints"
COUNT_FINAL = "count() journeys FINAL"
QUESTIONS: dict[str, Query] = {
    COUNT: Query("SELECT count() FROM touchpoints"),
    COUNT_FINAL: Query("SELECT count() FROM journeys FINAL"),
    "catalog (run first)": questions.CATALOG_SEEN,
    "query funnel": questions.funnel(None, EVERYTHING, []),
    "query dropoffs": questions.dropoffs(None, None, EVERYTHING, []),
    "query paths": questions.paths(None, None, EVERYTHING, 10),
}


@dataclass
class Timings:
    """Seconds per question and way in: `direct` (chDB in this process) and `http`."""

    direct: dict[str, list[float]] = field(default_factory=dict)
    http: dict[str, list[float]] = field(default_factory=dict)
    # MB per question and way: the highest peak RSS over its runs, and the highest rise.
    peak: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def record(self, way: str, name: str, seconds: float, memory: tuple[float, float]) -> None:
        getattr(self, way).setdefault(name, []).append(seconds)
        high, rise = self.peak.get((way, name), (0.0, 0.0))
        self.peak[way, name] = (max(high, memory[0]), max(rise, memory[1]))

    def median(self, way: str, name: str) -> float:
        runs: list[float] = getattr(self, way)[name]
        return statistics.median(runs)


def peak_rss() -> Callable[[], tuple[float, float]]:
    """Resets this process's peak RSS (Linux: `/proc/self/clear_refs`); the function returned
    gives (peak MB since then, how far above the RSS at the reset)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return lambda: (0.0, 0.0)
    start = memory_mb()
    return lambda: (memory_mb(None, "VmHWM"), max(0.0, memory_mb(None, "VmHWM") - start))


def _timed(client: Client, query: Query, engine: Client) -> tuple[float, tuple[float, float]]:
    """Seconds, and (peak RSS MB, its rise) while the query ran; `engine` (the embedded one,
    which `client` may reach through HTTP) first returns the memory it keeps cached."""
    engine.command("SYSTEM JEMALLOC PURGE")
    memory = peak_rss()
    started = time.perf_counter()
    ask(client, query)
    return time.perf_counter() - started, memory()


def time_questions(direct: Client, http: Client, repeats: int) -> Timings:
    """Every question `repeats` times, in rounds, each way."""
    timings = Timings()
    for _ in range(repeats):
        for name, query in QUESTIONS.items():
            timings.record("direct", name, *_timed(direct, query, direct))
            timings.record("http", name, *_timed(http, query, direct))
    return timings


def detail(timings: Timings) -> str:
    """Each question's median, range and ratios, one line each way."""
    count, final = timings.median("direct", COUNT), timings.median("direct", COUNT_FINAL)
    lines = [
        f"{'question':<22} {'via':<5} {'median s':>9} {'min-max s':>15} "
        f"{'x count()':>10} {'x FINAL count':>13} {'http/chDB':>9} {'peak MB':>8} {'rise MB':>8}"
    ]
    for name in QUESTIONS:
        for way in ("direct", "http"):
            runs = getattr(timings, way)[name]
            median = statistics.median(runs)
            overhead = median / timings.median("direct", name) if way == "http" else 1.0
            high, rise = timings.peak[way, name]
            lines.append(
                f"{name:<22} {'chDB' if way == 'direct' else 'HTTP':<5} {median:>9.3f} "
                f"{f'{min(runs):.3f}-{max(runs):.3f}':>15} {median / count:>10.1f} "
                f"{median / final:>13.2f} {overhead:>9.2f} {high:>8,.0f} {rise:>8,.0f}"
            )
    return "\n".join(lines)


def results(timings: Timings, touchpoints: int) -> list[Result]:
    """Per question: its median on chDB against the plain count, and through HTTP against
    itself on chDB (the interface's overhead)."""
    count = timings.median("direct", COUNT)
    scale = f"{touchpoints / 1e6:.1f}M touchpoints"
    out = [Result(f"analyst: SELECT count() FROM touchpoints ({scale})", 1000 * count, "ms", None)]
    for name in list(QUESTIONS)[1:]:
        direct = timings.median("direct", name)
        out.append(Result(f"analyst: {name}, chDB", 1000 * direct, "ms", 1000 * count))
        http = timings.median("http", name)
        out.append(Result(f"analyst: {name}, HTTP vs chDB", 1000 * http, "ms", 1000 * direct))
        _high, rise = timings.peak["direct", name]
        out.append(Result(f"analyst: {name}, chDB peak RSS rise", rise, "MB", None))
    return out


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench_analyst_queries(
    scale: Scale | None = None, repeats: int = 3, say: Callable[[str], None] = print
) -> list[Result]:
    """Make the data, then time the questions both ways; prints details through `say`."""
    scale = scale or Scale()
    with tempfile.TemporaryDirectory(prefix="journeys-bench-analyst-") as tmp:
        dsn = f"chdb://{Path(tmp) / 'clickhouse'}"
        with session(dsn) as direct:
            migrate(direct)
            say(f"generating {scale.journeys:,} journeys ({_load()}) ...")
            started = time.perf_counter()
            steps = generate(direct, scale)
            made = time.perf_counter() - started
            rows = table_rows(direct)
            say(f"generated in {made:.0f} s ({_load()}): " + _shown(steps, "s"))
            say("rows: " + _shown({k: float(v) for k, v in rows.items()}, ""))
            say("channel shares: " + _shown(channel_shares(direct), ""))
            interface = HttpInterface(Path(tmp) / "clickhouse", ClickHouseHttpSettings(port=0))
            interface.start()
            try:
                http = clickhouse_connect.get_client(dsn=reader_dsn(dsn))
                say(f"timing {len(QUESTIONS)} questions x {repeats}, chDB and HTTP ...")
                timings = time_questions(direct, http, repeats)
                http.close()
            finally:
                interface.stop()
        say(detail(timings))
        say(f"({_load()})")
    made_result = Result(
        f"analyst data: {rows['touchpoints'] / 1e6:.1f}M touchpoints, "
        f"{rows['journeys (FINAL)'] / 1e6:.1f}M journeys by INSERT SELECT",
        made,
        "seconds",
        None,
    )
    return [made_result, *results(timings, rows["touchpoints"])]


def _shown(values: dict[str, float], unit: str) -> str:
    return ", ".join(
        f"{k} {v:,.2f}{unit}" if v < 1 else f"{k} {v:,.0f}{unit}" for k, v in values.items()
    )


def main() -> int:
    """`python -m tests.bench.analyst_queries [--journeys N] [--repeats N]`: no broker needed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--journeys", type=int, default=Scale.journeys)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    persons = args.journeys * Scale.persons // Scale.journeys
    scale = Scale(journeys=args.journeys, persons=max(persons, 1))
    print(render(bench_analyst_queries(scale, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
