"""Latency: how long an event takes to become queryable, at a fixed offered load.

Every stage (friction included) and the sink run as separate processes on the local broker,
as `tests/bench/end_to_end.py` runs them. A feeder in this process publishes the simulator's
events at `LAT_RATE` events/s (default 1,000: about half the end-to-end peak measured on this
machine) for `LAT_SECONDS`, each stamped with the wall-clock time it is produced: its
`occurred_at` is that time, so event time runs at the wall clock's pace, as in production. A
query loop asks the sink's live HTTP interface (the one analysts and `journeys query` use)
every `POLL` seconds which events are in `touchpoints` (three hops: ingest, identity, whose
`stitched` rows carry the person, then the sink) and which journey transitions are in
`journey_transitions` (four hops: ingest, identity, journeys, the sink). Touchpoints are also
split at ingest by their `received_at` (when ingest took them): the feed and the broker
before it, the transactions and the sink after it. An event's latency is the time from its
produce call to the first poll that sees it, so touchpoint figures carry up to `POLL` of the
loop's own resolution, journey rows up to `Watch.EVERY` (their set is not known in advance, so
each question reads the last `WINDOW` seconds of them: asked less often).

Those questions cost the sink they ask (one takes about 0.1 s on this machine, in the sink's
process), so touchpoints are also timed from the sink's commit log, which costs it nothing:
the sink commits its offset past a batch only after inserting it, so a touchpoint is
queryable once the sink's committed offset on `stitched` has passed the message that carried
it (asked of the broker every `TICK` seconds).

Drop-offs: every stage's time limit is cut to `TIME_LIMIT` (definitions rewritten for the
run), so journeys drop off while it runs. A drop-off's latency runs from its deadline (its
`dropped_at`, on the wall clock here) to the first poll that sees the row; it cannot be below
the allowed lateness, the time the watermark stays behind the newest event.

Journey rows wait for the watermark (the newest timely event time minus
`processor.allowed_lateness`): the bench sets the allowed lateness to `LATENESS` seconds so the
figure shows the pipeline; with the default 2 minutes, journey rows come 2 minutes later.

The run repeats for each commit interval in `LAT_INTERVALS` (the stages' transaction cadence
and the sink's flush interval together): every hop reads only committed transactions, so the
interval sets a floor under the latency, and a shorter one costs throughput, measured in the
same run by the end-to-end feed of `LAT_CUSTOMERS` simulated customers at full speed.
`LAT_SINK_SECONDS` gives the sink a flush interval of its own instead.

Run alone: `journeys broker run --instance bench --port 19392 --controller-port 19393 --fresh
-- .venv/bin/python -m tests.bench.latency` (`make bench-latency`).
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
import tomllib
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from producers.files import publisher
from producers.pii import PiiHasher
from producers.simulator.config import SimConfig
from producers.simulator.engine import Simulation
from schemas import envelope
from schemas.settings import JourneyStageSettings, Settings
from schemas.topics import Topics
from sinks.clickhouse import reader_dsn, reading

from .end_to_end import STAGES, Pipeline, feed_file, run_together, wait_until
from .report import Result, render, save

ROOT = Path(__file__).resolve().parents[2]
RATE = float(os.environ.get("LAT_RATE", "1000"))
SECONDS = float(os.environ.get("LAT_SECONDS", "60"))
INTERVALS = [float(x) for x in os.environ.get("LAT_INTERVALS", "0.1,0.25,0.5,1.0").split(",")]
CUSTOMERS = int(os.environ.get("LAT_CUSTOMERS", "30000"))
# The sink's flush interval (`sink.max_seconds`) when it is not the commit interval.
SINK_SECONDS = float(os.environ["LAT_SINK_SECONDS"]) if "LAT_SINK_SECONDS" in os.environ else None
POLL = float(os.environ.get("LAT_POLL", "0.25"))  # seconds between questions about touchpoints
TICK = 0.05  # seconds between looks at the sink's commit log
LATENESS = 5  # seconds: processor.allowed_lateness in these runs
TIME_LIMIT = "15s"  # every stage's time limit in these runs


@dataclass
class Seen:
    """When each probe was produced and when the query loop first saw it, per table."""

    sent: dict[str, float] = field(default_factory=dict)  # event id -> produce time
    touchpoints: dict[str, float] = field(default_factory=dict)
    committed: dict[str, float] = field(default_factory=dict)  # past the sink's commit
    received: dict[str, float] = field(default_factory=dict)  # when ingest took it
    transitions: dict[str, float] = field(default_factory=dict)  # by event id too
    dropoffs: dict[str, float] = field(default_factory=dict)  # by drop-off id
    deadlines: dict[str, float] = field(default_factory=dict)  # drop-off id -> dropped_at
    # Seconds each poll took: the loop's questions share the sink's ClickHouse and process.
    polls: list[float] = field(default_factory=list)

    def latencies(self, table: dict[str, float]) -> list[float]:
        return sorted(at - self.sent[eid] for eid, at in table.items() if eid in self.sent)

    def dropoff_latencies(self) -> list[float]:
        return sorted(at - self.deadlines[d] for d, at in self.dropoffs.items())

    def hops(self) -> tuple[list[float], list[float]]:
        """Touchpoint latency split at ingest (its `received_at`, the time ingest took the
        event): produce -> ingest, and ingest -> queryable (ingest's transaction, the sink)."""
        sent, received = self.sent, self.received
        to_ingest = sorted(received[e] - sent[e] for e in received if e in sent)
        to_table = sorted(at - received[e] for e, at in self.touchpoints.items() if e in received)
        return to_ingest, to_table


def _events(count: int) -> list[tuple[str, dict[str, object]]]:
    """`count` simulated events in their order, with their partition keys (times replaced
    when sent)."""
    customers = max(1000, count // 3)  # about 3.3 events per simulated customer
    config = SimConfig(customers=customers, days=2.0, seed=11)
    events, _truth = Simulation(config, PiiHasher(Settings().pii)).run()
    return [(sim.key, dict(sim.event)) for sim in events[:count]]


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


def _since(wall: float) -> str:
    text = _iso(wall).replace("T", " ").removesuffix("+00:00")
    return f"toDateTime64('{text}', 3, 'UTC')"


class CommitLog:
    """Touchpoints as the sink's commit log tells it (see the module's docstring): the
    messages of `stitched` are read as they are committed, and each one's events count as
    queryable at the first look that finds the sink's committed offset past it."""

    def __init__(self, settings: Settings, seen: Seen) -> None:
        kafka = settings.kafka.as_librdkafka_dict()
        topic = Topics.from_settings(settings.topics).stitched
        parts = range(settings.topics.partitions)
        self.seen = seen
        self.reader = Consumer(
            {
                **kafka,
                "group.id": f"latency-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        # Only asks for the sink group's offsets: never joins it.
        self.group = Consumer(
            {**kafka, "group.id": settings.topics.group("sink"), "enable.auto.commit": False}
        )
        self.asked = [TopicPartition(topic, p) for p in parts]
        self.waiting: dict[int, deque[tuple[int, list[str]]]] = {p: deque() for p in parts}

    def look(self) -> None:
        for msg in self.reader.consume(10_000, 0):
            partition, offset, value = msg.partition(), msg.offset(), msg.value()
            if msg.error() is None and partition is not None and offset is not None and value:
                ids = [str(e["event_id"]) for e in envelope.decode(value).events]
                if ids:
                    self.waiting[partition].append((offset, ids))
        committed = self.group.committed(self.asked, timeout=10.0)
        at = time.time()
        for tp in committed:
            queue = self.waiting[tp.partition]
            while queue and queue[0][0] < tp.offset:
                for eid in queue.popleft()[1]:
                    self.seen.committed.setdefault(eid, at)

    def close(self) -> None:
        self.reader.close()
        self.group.close()


class Watch:
    """The query loop: which probes each table holds now, asked only for those produced
    since the oldest touchpoint not yet seen (and the last `WINDOW` seconds of transitions,
    whose set is not known in advance), so a question stays small however long the run."""

    WINDOW = 180.0
    EVERY = 1.0  # seconds between questions about journey rows

    def __init__(self, dsn: str, seen: Seen, log: CommitLog) -> None:
        self.dsn, self.seen, self.log = dsn, seen, log
        self.order: list[str] = []  # probe ids in produce order
        self.oldest = 0  # index in `order` of the oldest touchpoint not yet seen
        self.asked_touchpoints = 0.0  # when touchpoints were last asked for
        self.asked = 0.0  # when journey rows were last asked for

    def sent(self, event_id: str, wall: float) -> None:
        self.seen.sent[event_id] = wall
        self.order.append(event_id)

    def poll(self) -> None:
        """Look at the commit log; ask the sink what is due to be asked."""
        self.log.look()
        if time.time() - self.asked_touchpoints >= POLL:
            self.asked_touchpoints = time.time()
            self._ask()

    def _ask(self) -> None:
        seen, order = self.seen, self.order
        while self.oldest < len(order) and order[self.oldest] in seen.touchpoints:
            self.oldest += 1
        tp_since = seen.sent[order[min(self.oldest, len(order) - 1)]] - 0.001
        tr_since = max(seen.sent[order[0]], time.time() - self.WINDOW)
        asked = time.perf_counter()
        with reading(self.dsn) as client:
            touchpoints = client.query(
                "SELECT toString(event_id), toUnixTimestamp64Milli(received_at) FROM touchpoints "
                f"WHERE occurred_at >= {_since(tp_since)}"
            ).result_rows
            transitions: Sequence[Sequence[Any]] = []
            dropoffs: Sequence[Sequence[Any]] = []
            if time.time() - self.asked >= self.EVERY:
                self.asked = time.time()
                transitions = client.query(
                    f"SELECT event_id FROM journey_transitions WHERE at >= {_since(tr_since)}"
                ).result_rows
                dropoffs = client.query(
                    "SELECT dropoff_id, toUnixTimestamp64Milli(dropped_at) FROM dropoffs "
                    f"WHERE reason = 'time_limit' AND dropped_at >= {_since(tr_since)}"
                ).result_rows
        at = time.time()
        seen.polls.append(time.perf_counter() - asked)
        for eid, received_ms in touchpoints:
            seen.touchpoints.setdefault(eid, at)
            seen.received[eid] = received_ms / 1000
        for (eid,) in transitions:
            seen.transitions.setdefault(eid, at)
        for dropoff_id, dropped_ms in dropoffs:
            seen.dropoffs.setdefault(dropoff_id, at)
            seen.deadlines.setdefault(dropoff_id, dropped_ms / 1000)


def run_latency(work: Path, interval: float, events: list[tuple[str, dict[str, object]]]) -> Seen:
    """One pipeline at commit interval `interval`, fed `events` at RATE, watched by the loop."""
    p = Pipeline(work, f"lat{int(interval * 1000)}")
    p.env.update(
        {
            "JOURNEYS_PROCESSOR__COMMIT_INTERVAL_SECONDS": str(interval),
            "JOURNEYS_SINK__MAX_SECONDS": str(_sink_seconds(interval)),
            "JOURNEYS_PROCESSOR__ALLOWED_LATENESS": f"PT{LATENESS}S",
            # Time must move while the feed runs, also in a pause of a partition.
            "JOURNEYS_PROCESSOR__IDLE_AFTER_SECONDS": "5",
            "JOURNEYS_JOURNEYS__DEFINITIONS": orjson.dumps(
                [str(d) for d in _short_limits(work)]
            ).decode(),
        }
    )
    names = [*STAGES, "sink"]
    seen = Seen()
    try:
        for name in names:
            p.start(name)
        wait_until(lambda: p.joined(names), "every process joining its group", 300)
        wait_until(lambda: _served(p), "the sink serving its HTTP interface", 120)
        log = CommitLog(p.settings, seen)
        watch = Watch(reader_dsn(p.env["JOURNEYS_CLICKHOUSE__DSN"]), seen, log)
        pub = publisher(p.settings)
        started = time.time()
        next_poll = started + TICK
        for n, (key, event) in enumerate(events, start=1):
            wall = time.time()
            event["occurred_at"] = _iso(wall)
            watch.sent(str(event["event_id"]), wall)
            pub.publish_fragment(key, orjson.dumps(event))
            due = started + n / RATE
            if wall >= next_poll or due > wall:
                pub.drain()
                if wall >= next_poll:
                    watch.poll()
                    next_poll = time.time() + TICK
                pause = due - time.time()
                if pause > 0:
                    time.sleep(pause)
        pub.flush()
        # Let the last ones arrive: every touchpoint seen, and the journey rows of the last
        # events, which come once idle advance moves the watermark past them (a minute).
        fed = time.time()
        while time.time() < fed + 60:
            time.sleep(TICK)
            watch.poll()
        p.check_alive()
        log.close()
        return seen
    finally:
        p.stop()


def _short_limits(work: Path) -> list[Path]:
    """The shipped definitions with every stage's time limit set to `TIME_LIMIT`."""
    folder = work / "definitions"
    folder.mkdir(exist_ok=True)
    written = []
    for shipped in JourneyStageSettings().definitions:
        text = shipped.read_text()
        limits = sum(1 for stage in tomllib.loads(text)["stages"] if "time_limit" in stage)
        short = re.sub(r'(?m)^time_limit = "[^"]*"$', f'time_limit = "{TIME_LIMIT}"', text)
        if short.count(f'time_limit = "{TIME_LIMIT}"') != limits:
            raise RuntimeError(f"{shipped}: not every time_limit line was found")
        written.append(folder / shipped.name)
        written[-1].write_text(short)
    return written


def _served(p: Pipeline) -> bool:
    p.check_alive()
    return reader_dsn(p.env["JOURNEYS_CLICKHOUSE__DSN"]).startswith("http")


def run_throughput(work: Path, interval: float) -> float:
    """Events/s of the end-to-end feed at full speed, at commit interval `interval`."""
    feed = feed_file(CUSTOMERS)
    os.environ["JOURNEYS_PROCESSOR__COMMIT_INTERVAL_SECONDS"] = str(interval)
    os.environ["JOURNEYS_SINK__MAX_SECONDS"] = str(_sink_seconds(interval))
    try:
        together, _ = run_together(work, feed, None)
    finally:
        del os.environ["JOURNEYS_PROCESSOR__COMMIT_INTERVAL_SECONDS"]
        del os.environ["JOURNEYS_SINK__MAX_SECONDS"]
    return feed.events / together.seconds


def _sink_seconds(interval: float) -> float:
    return SINK_SECONDS if SINK_SECONDS is not None else interval


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def bench_latency(work: Path) -> list[Result]:
    events = _events(int(RATE * SECONDS))
    results: list[Result] = []
    for interval in INTERVALS:
        print(f"latency: commit interval {interval} s, {RATE:,.0f} events/s ...", flush=True)
        seen = run_latency(work, interval, [(k, dict(e)) for k, e in events])
        rate = run_throughput(work, interval)
        run = f"interval {interval} s" + (
            f", sink {SINK_SECONDS} s" if SINK_SECONDS is not None else ""
        )
        tables = (
            (seen.touchpoints, "touchpoints"),
            (seen.committed, "touchpoints by the commit log"),
            (seen.transitions, "journeys"),
        )
        for table, label in tables:
            lat = seen.latencies(table)
            for q, name in ((0.5, "p50"), (0.99, "p99")):
                results.append(
                    Result(
                        f"{run}: {label} {name} ({len(lat):,} seen)",
                        quantile(lat, q),
                        "s",
                        None,
                        "<= 3 s" if label == "touchpoints" and name == "p99" else "",
                    )
                )
            results.append(Result(f"{run}: {label} max", max(lat, default=0), "s", None))
        to_ingest, to_table = seen.hops()
        for lat, hop in ((to_ingest, "produce -> ingest"), (to_table, "ingest -> queryable")):
            for q, name in ((0.5, "p50"), (0.99, "p99")):
                results.append(Result(f"{run}: {hop} {name}", quantile(lat, q), "s", None))
        dropoffs = seen.dropoff_latencies()
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            results.append(
                Result(
                    f"{run}: drop-offs {name} ({len(dropoffs):,} seen)",
                    quantile(dropoffs, q),
                    "s",
                    None,
                )
            )
        results.append(Result(f"{run}: drop-offs max", max(dropoffs, default=0), "s", None))
        polls = sorted(seen.polls)
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            results.append(
                Result(
                    f"{run}: one poll of the loop {name}",
                    quantile(polls, q),
                    "s",
                    None,
                )
            )
        missing = len(seen.sent) - len(seen.touchpoints)
        results.append(Result(f"{run}: touchpoints not seen", missing, "", None))
        results.append(Result(f"{run}: end to end at full speed", rate, "events/s", None))
    return results


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="journeys-latency-") as tmp:
        results = bench_latency(Path(tmp))
    print(render(results))
    save(results, ROOT / ".local" / "bench" / "latency.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
