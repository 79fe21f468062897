"""The pipeline at scale: every stage (friction included) and the sink as separate processes
on the local broker, fed at full speed with the demo's simulated traffic for a million
customers (4.7 million events; SCALE_CUSTOMERS sets another size), run to the end.

It reports:
- whether it ran to the end, and how long it took from the first publish;
- the journeys in ClickHouse (`journeys FINAL`: definition, status, and the stage a dropped-off
  journey dropped off at) and the persons stitched, against the simulator's ground truth;
- each process's peak resident memory;
- the journeys stage's resident memory per open journey: its resident memory when it held
  the most open journeys (its `journeys_open` gauge, sampled every few seconds, beside the
  persons and buffered events it held then) less its resident memory before the feed
  started, divided by those open journeys (the growth is all it holds: persons, buffered
  events and client queues too, so the figure is an upper bound on the journeys' share);
  and the most events it held buffered, with its memory then. A line a minute shows the same
  census as it runs.

The feed is written once per size by a process of its own (the simulation of a million
customers holds gigabytes the bench should not keep) and reused: .local/bench/scale-N.jsonl,
with the truth's counts beside it. The demo's repeats and invalid payloads are left out: this
run measures scale, the demo and the chaos suite measure those.

Run alone: `make bench-scale` (not part of `make bench`: it takes most of the machine's
memory and tens of minutes).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import orjson

from deploy.demo import demo_traffic
from producers.pii import PiiHasher
from producers.simulator.engine import Simulation
from schemas.settings import Settings
from sinks.clickhouse import connect
from tests.process_memory import memory_mb

from .end_to_end import (
    STAGES,
    Feed,
    Pipeline,
    cpu_seconds,
    wait_until,
)
from .report import Result, render, save

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = int(os.environ.get("SCALE_CUSTOMERS", "1000000"))
SAMPLE_EVERY = 5.0  # seconds; the stage sets its gauge every 30
Outcome = tuple[str, str, str]  # definition, status, dropped-off stage ("" otherwise)


@dataclass(frozen=True)
class Truth:
    persons: int
    outcomes: Counter[Outcome]


def write_feed(customers: int) -> None:
    """The demo's traffic for `customers` as JSON Lines, and the truth's counts beside it."""
    path = _feed_path(customers)
    events, truth = Simulation(demo_traffic(customers), PiiHasher(Settings().pii)).run()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for sim in events:
            out.write(orjson.dumps(sim.event) + b"\n")
    outcomes = Counter(
        (j.definition, j.outcome or "open", j.dropped_stage or "") for j in truth.journeys
    )
    meta = {
        "events": len(events),
        "close_at": truth.closes_at.isoformat(),
        "persons": len(truth.persons),
        "outcomes": [[*k, n] for k, n in sorted(outcomes.items())],
    }
    path.with_suffix(".json").write_bytes(orjson.dumps(meta))


def _feed_path(customers: int) -> Path:
    return ROOT / ".local" / "bench" / f"scale-{customers}.jsonl"


def feed_and_truth(customers: int) -> tuple[Feed, Truth]:
    path = _feed_path(customers)
    meta_path = path.with_suffix(".json")
    if not (path.exists() and meta_path.exists()):
        print(f"scale: simulating {customers:,} customers into {path} ...", flush=True)
        started = time.monotonic()
        command = [sys.executable, "-m", "tests.bench.scale", "--write-feed", str(customers)]
        subprocess.run(command, check=True)
        print(f"scale: simulated in {time.monotonic() - started:.0f} s", flush=True)
    meta = orjson.loads(meta_path.read_bytes())
    outcomes: Counter[Outcome] = Counter(
        {(str(d), str(s), str(stage)): int(n) for d, s, stage, n in meta["outcomes"]}
    )
    feed = Feed(path, int(meta["events"]), str(meta["close_at"]))
    return feed, Truth(int(meta["persons"]), outcomes)


# -- the journeys stage's memory, sampled -----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GAUGES = (
    "journeys_open",
    "journeys_persons",
    "journeys_events_buffered",
    "journeys_partitions_awaiting_handoffs",
    "journeys_partitions_paused",
    "journeys_persons_frozen",
)


class Sample(NamedTuple):
    open_journeys: int
    persons: int
    buffered: int
    awaiting: int  # partitions awaiting merged persons' state (time stops short of the merge)
    paused: int  # partitions not reading `stitched`: their input too far ahead of their time
    frozen: int  # persons kept as their snapshot (no open journey, session or buffered event)
    rss_mb: float


def census(port: int) -> tuple[int, int, int, int, int, int] | None:
    """The stage's census gauges, or None while its metrics do not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in GAUGES:
            found[name] = int(float(value))
    if len(found) < len(GAUGES):
        return None
    opened, persons, buffered, awaiting, paused, frozen = (found[name] for name in GAUGES)
    return opened, persons, buffered, awaiting, paused, frozen


_NONE = Sample(0, 0, 0, 0, 0, 0, 0.0)


@dataclass
class Samples:
    """The journeys stage's census and resident memory every `SAMPLE_EVERY` seconds, a line
    of progress a minute."""

    pid: int
    port: int
    taken: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.wait(SAMPLE_EVERY):
            counts = census(self.port)
            try:
                rss = memory_mb(self.pid)
            except (OSError, LookupError):
                return  # it exited: the bench reports that
            if counts is None:
                continue
            self.taken.append(Sample(*counts, rss))
            if len(self.taken) % 12 == 0:
                o, p, b, a, z, f, r = self.taken[-1]
                print(
                    f"scale: {time.monotonic() - started:.0f} s: journeys stage holds {p:,} "
                    f"persons ({f:,} frozen), {o:,} open journeys, {b:,} buffered events, "
                    f"{r:,.0f} MB; "
                    f"{a} partitions await handoffs, {z} paused",
                    flush=True,
                )

    def at_most_open(self) -> Sample:
        """The first sample with the most open journeys: the gauges are set every 30 s, so
        its memory is read up to one sample after the census it pairs with."""
        return max(self.taken, key=lambda s: s.open_journeys, default=_NONE)

    def at_most_buffered(self) -> Sample:
        return max(self.taken, key=lambda s: s.buffered, default=_NONE)


# -- the run ----------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    peak_mb: dict[str, float]
    cpu: dict[str, float]
    baseline_mb: float  # the journeys stage before the feed
    most_open: Sample
    most_buffered: Sample
    found: Counter[Outcome]
    persons: int
    touchpoints: int


def run(work: Path, feed: Feed) -> Run:
    p = Pipeline(work, "scale")
    names = [*STAGES, "sink"]
    port = _free_port()
    samples: Samples | None = None
    try:
        for name in names:
            if name == "journeys":
                p.start(name, JOURNEYS_PROCESSOR__METRICS_PORT=str(port))
            else:
                p.start(name)
        wait_until(lambda: p.joined(names), "every process joining its group", 300)
        stage = p.children["journeys"].pid
        samples = Samples(stage, port)
        sampler = threading.Thread(target=samples.run, daemon=True)
        baseline = memory_mb(stage)
        startup = {n: cpu_seconds(p.children[n].pid) for n in names}
        t0 = time.monotonic()
        sampler.start()
        feeder = p.feed(feed)
        # Every group is drained whenever it has caught up: only once the feed is all
        # published does that mean the end.
        wait_until(lambda: _published(p, feeder), "the feed published", 3 * 3600)
        print(f"scale: fed {feed.events:,} events in {time.monotonic() - t0:.1f} s", flush=True)
        end = t0
        for name in names:
            end = wait_until(partial(p.drained, name), f"{name} committing everything", 3 * 3600)
            print(f"scale: {name} drained at {end - t0:.1f} s", flush=True)
        peak = {n: memory_mb(p.children[n].pid, "VmHWM") for n in names}
        cpu = {n: cpu_seconds(p.children[n].pid) - startup[n] for n in names}
    finally:
        if samples is not None:
            samples.stop.set()
        p.stop()  # the sink writes what it holds and closes ClickHouse, opened next
    client = connect(p.env["JOURNEYS_CLICKHOUSE__DSN"], create=False)
    found: Counter[Outcome] = Counter(
        {
            (str(d), str(s), str(stage)): int(n)
            for d, s, stage, n in client.query(
                "SELECT definition_id, status, if(status = 'dropped_off', stage, ''), count() "
                "FROM journeys FINAL WHERE status != 'merged' GROUP BY 1, 2, 3"
            ).result_rows
        }
    )
    persons = int(
        client.query(
            "SELECT uniqExact(latest_person_id) FROM touchpoints_latest WHERE person_id != ''"
        ).result_rows[0][0]
    )
    touchpoints = int(client.query("SELECT count() FROM touchpoints").result_rows[0][0])
    client.close()
    most_open, most_buffered = samples.at_most_open(), samples.at_most_buffered()
    return Run(end - t0, peak, cpu, baseline, most_open, most_buffered, found, persons, touchpoints)


def _published(p: Pipeline, feeder: subprocess.Popen[bytes]) -> bool:
    p.check_alive()
    if feeder.poll() is None:
        return False
    if feeder.returncode != 0:
        raise RuntimeError(f"scale: the feeder exited with {feeder.returncode}")
    return True


def differences(found: Counter[Outcome], truth: Counter[Outcome]) -> list[str]:
    return [
        f"{' '.join(k for k in key if k)}: {found[key]:,} found, {truth[key]:,} in the truth"
        for key in sorted(set(found) | set(truth))
        if found[key] != truth[key]
    ]


def bench_scale(work: Path, customers: int = CUSTOMERS) -> tuple[list[Result], list[str]]:
    feed, truth = feed_and_truth(customers)
    print(f"scale: {feed.events:,} events of {customers:,} customers, all processes ...")
    r = run(work, feed)
    most = r.most_open
    grown = (most.rss_mb - r.baseline_mb) * 1024 * 1024
    per_open = grown / most.open_journeys if most.open_journeys else 0.0
    results = [
        Result(
            f"end to end: {feed.events:,} events of {customers:,} customers", r.seconds, "s", None
        ),
        Result("rate end to end", feed.events / r.seconds, "events/s", None),
        Result(
            "touchpoints in ClickHouse, plain count() (vs sent)", r.touchpoints, "rows", feed.events
        ),
        Result("persons stitched (vs truth)", r.persons, "persons", truth.persons),
        Result(
            "journeys in ClickHouse (vs truth)",
            r.found.total(),
            "journeys",
            truth.outcomes.total(),
        ),
        Result("journeys stage: most open journeys sampled", most.open_journeys, "journeys", None),
        Result("journeys stage: persons held then", most.persons, "persons", None),
        Result("journeys stage: of them frozen", most.frozen, "persons", None),
        Result("journeys stage: events buffered then", most.buffered, "events", None),
        Result("journeys stage: resident memory then", most.rss_mb, "MB", r.baseline_mb),
        Result(
            "journeys stage: resident memory per open journey",
            per_open,
            "bytes",
            None,
            "<= 1,024",
        ),
        Result(
            "journeys stage: most events buffered sampled",
            r.most_buffered.buffered,
            "events",
            None,
        ),
        Result(
            "journeys stage: resident memory then",
            r.most_buffered.rss_mb,
            "MB",
            r.baseline_mb,
        ),
        Result(
            "journeys stage: partitions awaiting handoffs then",
            r.most_buffered.awaiting,
            "partitions",
            None,
        ),
        Result(
            "journeys stage: partitions paused then",
            r.most_buffered.paused,
            "partitions",
            None,
        ),
    ]
    for name in [*STAGES, "sink"]:
        results.append(Result(f"{name}: peak memory", r.peak_mb[name], "MB", None))
        results.append(Result(f"{name}: CPU s", r.cpu[name], "CPU s", None))
    return results, differences(r.found, truth.outcomes)


def main() -> int:
    if sys.argv[1:2] == ["--write-feed"]:
        write_feed(int(sys.argv[2]))
        return 0
    with tempfile.TemporaryDirectory(prefix="journeys-scale-") as tmp:
        results, differ = bench_scale(Path(tmp))
    print(render(results))
    print("outcomes against the simulator's truth:", "equal" if not differ else "DIFFERENT")
    for line in differ:
        print(f"  {line}")
    save(results, ROOT / ".local" / "bench" / "scale.json")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
