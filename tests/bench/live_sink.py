"""The sink's rows/s with and without four analysts querying it, in one run.

One chDB folder holds analyst data (tests/bench/analyst_data.py, at `Scale` 200,000 journeys:
1.3 million touchpoints) for the questions to read. The sink (as `tests/bench/pipeline.py`
runs it: `TopicSink` in this process, stitched touchpoints into `touchpoints`) then drains
`rows` touchpoints from a topic of its own three times, always serving its folder's HTTP
interface as `journeys sink` does (`sinks.http.server.serving`): with nobody reading, with four
analysts, and with nobody reading again (how far the figure drifts with nothing changed).

The analysts are four threads, each a client of the served interface found the way
`journeys query` finds it (`reader_dsn`), each asking one question over and over from before
the sink starts until it is done: `journeys query funnel`, `dropoffs`, `paths` (the SQL of
`deploy.query.questions`) and a count of the touchpoints. The figure is the rows inserted
after the sink's first insert over the time from it to the last (a thread notes when the
first is in), so joining the consumer group is left out; the whole run's figure is printed
beside it.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from deploy.query import questions
from deploy.query.options import TimeRange
from deploy.query.questions import Query
from deploy.query.reader import ask
from schemas.settings import ClickHouseHttpSettings, ClickHouseSettings, Settings
from schemas.topics import Topics
from sinks.clickhouse import migrate, reader_dsn, session
from sinks.http.server import serving
from sinks.runner import TopicSink

from .analyst_data import Scale, generate
from .pipeline import bench_settings, publish, valid_fragments
from .report import Result, render

READERS_SCALE = Scale(journeys=200_000, persons=70_000)
EVERYTHING = TimeRange()
ASKED: dict[str, Query] = {
    "funnel": questions.funnel(None, EVERYTHING, []),
    "dropoffs": questions.dropoffs(None, None, EVERYTHING, []),
    "paths": questions.paths(None, None, EVERYTHING, 10),
    "count": Query("SELECT count() FROM touchpoints"),
}


@dataclass
class SinkRun:
    rows: int
    whole_seconds: float  # from the sink's start to its last insert
    first_rows: int  # rows in when the first insert was seen
    steady_seconds: float  # from the first insert seen to the last

    @property
    def steady_rate(self) -> float:
        return (self.rows - self.first_rows) / max(self.steady_seconds, 1e-9)

    @property
    def whole_rate(self) -> float:
        return self.rows / max(self.whole_seconds, 1e-9)


@dataclass
class Analysts:
    """Four threads, each asking one question through the served interface until stopped."""

    dsn: str
    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        deadline = time.monotonic() + 60
        while reader_dsn(self.dsn) == self.dsn:  # the sink announces its interface
            if time.monotonic() > deadline:
                raise TimeoutError("the sink did not serve its folder")
            time.sleep(0.05)
        for name in ASKED:
            thread = threading.Thread(target=self._ask, args=(name,), name=f"analyst-{name}")
            self._threads.append(thread)
            thread.start()

    def _ask(self, name: str) -> None:
        client: Client = clickhouse_connect.get_client(dsn=reader_dsn(self.dsn))
        runs = self.seconds.setdefault(name, [])
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                ask(client, ASKED[name])
                runs.append(time.perf_counter() - started)
        except Exception as exc:  # reported with the figures, never silently
            self.errors.append(f"{name}: {str(exc).splitlines()[0][:200]}")
        finally:
            client.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def sink_run(settings: Settings, client: Client, rows: int, analysts: Analysts | None) -> SinkRun:
    """Drain `rows` stitched touchpoints into chDB while serving the folder (and, given
    `analysts`, while they ask)."""
    topics = Topics.from_settings(settings.topics)
    sink = TopicSink(settings, client, {topics.stitched: "touchpoints"})
    first: list[tuple[float, int]] = []
    running = threading.Event()

    def watch() -> None:  # when the first insert is in (the sink's loop may write several)
        while running.is_set() and not sink.stats.rows:
            time.sleep(0.002)
        first.append((time.perf_counter(), sink.stats.rows))

    with serving(settings.clickhouse_dsn, settings.clickhouse.http):
        if analysts is not None:
            analysts.start()
        watcher = threading.Thread(target=watch, name="first-insert")
        running.set()
        watcher.start()
        try:
            started = time.perf_counter()
            sink.run(lambda: sink.stats.rows >= rows, idle_exit_seconds=60.0)
            ended = time.perf_counter()
        finally:
            running.clear()
            watcher.join()
            if analysts is not None:
                analysts.stop()
    if sink.stats.rows < rows:
        raise RuntimeError(f"the sink wrote {sink.stats.rows:,} of {rows:,} rows")
    at, first_rows = first[0]
    return SinkRun(sink.stats.rows, ended - started, first_rows, ended - at)


def _sharing(settings: Settings, dsn: str) -> Settings:
    """`settings` writing into the folder of `dsn`, served on any free port."""
    clickhouse = ClickHouseSettings(dsn=dsn, http=ClickHouseHttpSettings(port=0))
    return settings.model_copy(update={"clickhouse": clickhouse})


def bench_sink_with_readers(work: Path, rows: int = 1_000_000) -> list[Result]:
    """The sink alone, with four analysts, and alone again, on one folder; prints details."""
    first = bench_settings(work)
    dsn = first.clickhouse_dsn
    runs = [_sharing(first, dsn), _sharing(bench_settings(work), dsn)]
    runs.append(_sharing(bench_settings(work), dsn))
    for n, settings in enumerate(runs):
        topic = Topics.from_settings(settings.topics).stitched
        publish(settings, topic, valid_fragments(rows, keys=50_000, offset=n * rows))
    with session(dsn) as client:
        migrate(client)
        generate(client, READERS_SCALE)
        alone = sink_run(runs[0], client, rows, None)
        analysts = Analysts(dsn)
        busy = sink_run(runs[1], client, rows, analysts)
        again = sink_run(runs[2], client, rows, None)
    print(_detail(alone, busy, again, analysts), flush=True)
    if analysts.errors:
        raise RuntimeError("analyst queries failed: " + "; ".join(analysts.errors))
    return [
        Result("sink into chDB, serving, nobody reading", alone.steady_rate, "rows/s", None),
        Result(
            "sink into chDB, four analysts querying it",
            busy.steady_rate,
            "rows/s",
            alone.steady_rate,
        ),
        Result(
            "sink again, nobody reading (drift)", again.steady_rate, "rows/s", alone.steady_rate
        ),
    ]


def _detail(alone: SinkRun, busy: SinkRun, again: SinkRun, analysts: Analysts) -> str:
    lines = [
        f"sink rows/s, first to last insert (whole run from start): alone "
        f"{alone.steady_rate:,.0f} ({alone.whole_rate:,.0f}), with analysts "
        f"{busy.steady_rate:,.0f} ({busy.whole_rate:,.0f}), alone again "
        f"{again.steady_rate:,.0f} ({again.whole_rate:,.0f})",
        f"while the sink ran with analysts ({busy.whole_seconds:.1f} s), each asked:",
    ]
    for name, runs in analysts.seconds.items():
        median = f"median {statistics.median(runs):.2f} s" if runs else "none finished"
        lines.append(f"  {name:<9} {len(runs):>4} times, {median}")
    lines.append("load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    return "\n".join(lines)


def main() -> int:
    """`python -m tests.bench.live_sink [ROWS]`: a broker must run
    (JOURNEYS_KAFKA__BOOTSTRAP_SERVERS names it), as `journeys broker run` provides."""
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory(prefix="journeys-bench-") as tmp:
        results = bench_sink_with_readers(Path(tmp), rows)
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
