"""End to end: every stage (friction included) and the sink as separate
processes on the local broker, fed at full speed from a pre-written file of simulated events
(`journeys publish FILE --close-at TIME`, a process of its own), timed from the first publish
until every stage's group and the sink's have committed all there is, start-up excluded.

Beside it, from the same run:
- the bound: each process measured alone on the same events (its input already written by
  the processes before it), its CPU seconds per event added up over the chain and spread over
  the machine's cores; a process's start-up CPU (imports, joining its group, an idle pipeline)
  is measured in the end-to-end run before the feed starts and taken off;
- the raw consume rate of the same `raw` topic (confluent-kafka, envelope decode);
- each process's CPU seconds and peak resident memory, the broker's and the feeder's apart.

Run alone: `journeys broker run --instance bench --port 19392 --controller-port 19393 --fresh
-- .venv/bin/python -m tests.bench.end_to_end` (`make bench` runs it too). E2E_CUSTOMERS sets
the simulated customers (300,000 make about a million events); the file is kept in
.local/bench/ and reused.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from deploy.kafka_admin import admin_client, ensure_topics, group_drained
from producers.pii import PiiHasher
from producers.simulator.config import SimConfig
from producers.simulator.engine import Simulation
from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.runner import pipeline_routes
from tests.process_memory import memory_mb

from .report import Result, render, save

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = int(os.environ.get("E2E_CUSTOMERS", "300000"))
TICK = os.sysconf("SC_CLK_TCK")
POLL = 0.5  # seconds between drain checks: the end time's resolution
STAGES = ("ingest", "identity", "journeys", "friction")


@dataclass(frozen=True)
class Feed:
    path: Path
    events: int
    close_at: str


def feed_file(customers: int, seed: int = 7) -> Feed:
    """The simulator's events as JSON Lines, written once per size and seed and reused."""
    path = ROOT / ".local" / "bench" / f"e2e-{customers}-{seed}.jsonl"
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        print(f"e2e: simulating {customers:,} customers into {path} ...", flush=True)
        config = SimConfig(customers=customers, days=2.0, seed=seed)
        events, truth = Simulation(config, PiiHasher(Settings().pii)).run()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for sim in events:
                out.write(orjson.dumps(sim.event) + b"\n")
        meta.write_text(
            orjson.dumps({"events": len(events), "close_at": truth.closes_at.isoformat()}).decode()
        )
    info = orjson.loads(meta.read_bytes())
    return Feed(path, int(info["events"]), str(info["close_at"]))


# -- processes ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def broker_pid(instance: str) -> int | None:
    """The local broker's java process (its properties live under kafka/<instance>/)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "kafka.Kafka" in cmdline and f"/kafka/{instance}/" in cmdline:
            return int(entry.name)
    return None


class Pipeline:
    """The stages and the sink of one topic prefix, as child processes of this bench."""

    def __init__(self, work: Path, label: str) -> None:
        run = uuid.uuid4().hex[:8]
        data = work / f"{label}-{run}"
        self.env = {
            **os.environ,
            "JOURNEYS_TOPICS__PREFIX": f"e2e{label}{run}.",
            "JOURNEYS_CLICKHOUSE__DSN": f"chdb://{data / 'clickhouse'}",
            "JOURNEYS_DATA_DIR": str(data),
            "JOURNEYS_PROCESSOR__METRICS_PORT": "0",
            "JOURNEYS_PROCESSOR__IDLE_AFTER_SECONDS": "0",
            "JOURNEYS_LOG_LEVEL": "WARNING",
            "JOURNEYS_CLICKHOUSE__HTTP__PORT": "0",
        }
        self.settings = Settings(
            kafka={"bootstrap_servers": os.environ["JOURNEYS_KAFKA__BOOTSTRAP_SERVERS"]},
            topics={"prefix": self.env["JOURNEYS_TOPICS__PREFIX"]},
            data_dir=data,
        )
        self.topics = Topics.from_settings(self.settings.topics)
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = data / "logs"  # the processes' own output, read when one fails
        self.logs.mkdir(parents=True)
        ensure_topics(self.settings)

    def start(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        cli = [sys.executable, "-m", "deploy.cli"]
        command = [*cli, "sink"] if name == "sink" else [*cli, "process", name]
        with open(self.logs / f"{name}.log", "ab") as log:
            child = subprocess.Popen(command, env={**self.env, **env}, stdout=log, stderr=log)
        self.children[name] = child
        return child

    def feed(self, feed: Feed) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "deploy.cli", "publish", str(feed.path)]
        child = subprocess.Popen(
            [*command, "--close-at", feed.close_at], env=self.env, stdout=subprocess.DEVNULL
        )
        self.children["feeder"] = child
        return child

    def group(self, name: str) -> str:
        if name == "sink":
            return self.settings.sink.group_id or self.settings.topics.group("sink")
        return self.settings.topics.group(name)

    def inputs(self, name: str) -> list[str]:
        t = self.topics
        return {
            "ingest": [t.raw],
            "identity": [t.touchpoints, t.identity_links],
            "journeys": [t.stitched, t.identity_merges, t.journey_handoff],
            "friction": [
                t.stitched,
                t.journey_transitions,
                t.journey_dropoffs,
                t.friction_partials,
            ],
            "sink": list(pipeline_routes(t)),
        }[name]

    def drained(self, name: str) -> bool:
        self.check_alive()
        return group_drained(self.settings, self.group(name), self.inputs(name))

    def joined(self, names: list[str]) -> bool:
        """Every named group is stable with a member (the process is up and assigned)."""
        self.check_alive()
        admin = admin_client(self.settings)
        groups = [self.group(n) for n in names]
        try:
            found = admin.describe_consumer_groups(groups, request_timeout=10)
            described = [future.result(timeout=15) for future in found.values()]
        except (KafkaException, TimeoutError):
            return False  # the coordinator is still loading: ask again
        return all(str(d.state).rsplit(".", 1)[-1] == "STABLE" and d.members for d in described)

    def check_alive(self) -> None:
        for name, child in self.children.items():
            if name != "feeder" and child.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"e2e: {name} exited with {child.returncode}:\n{tail}")

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def wait_until(condition: Callable[[], bool], what: str, limit: float = 3600.0) -> float:
    """Poll until `condition`; the monotonic time it first held."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"e2e: {what} did not happen within {limit:.0f} s")
        time.sleep(POLL)
    return time.monotonic()


# -- the runs -------------------------------------------------------------------------------


@dataclass
class Together:
    seconds: float
    cpu: dict[str, float]  # per process, start-up excluded
    startup_cpu: dict[str, float]
    peak_mb: dict[str, float]
    broker_cpu: float | None


def run_together(work: Path, feed: Feed, broker: int | None) -> tuple[Together, Pipeline]:
    """Every process at once, the feed published at full speed once all have joined."""
    p = Pipeline(work, "all")
    names = [*STAGES, "sink"]
    try:
        for name in names:
            p.start(name)
        wait_until(lambda: p.joined(names), "every process joining its group", 300)
        startup = {n: cpu_seconds(p.children[n].pid) for n in names}
        broker_before = cpu_seconds(broker) if broker else None
        t0 = time.monotonic()
        feeder = p.feed(feed)
        fed = _waited_cpu(feeder)
        print(f"e2e: fed {feed.events:,} events in {time.monotonic() - t0:.1f} s", flush=True)
        end = t0
        for name in names:
            end = wait_until(partial(p.drained, name), f"{name} committing everything")
            print(f"e2e: {name} drained at {end - t0:.1f} s", flush=True)
        cpu = {n: cpu_seconds(p.children[n].pid) - startup[n] for n in names}
        cpu["feeder"] = fed
        peak = {n: memory_mb(p.children[n].pid, "VmHWM") for n in names}
        broker_cpu = cpu_seconds(broker) - broker_before if broker and broker_before else None
        return Together(end - t0, cpu, startup, peak, broker_cpu), p
    finally:
        p.stop()


def raw_consume(settings: Settings, topic: str) -> Result:
    """Baseline: confluent-kafka consume + envelope decode of the same topic, to its end."""
    consumer = Consumer(
        {
            **settings.kafka.as_librdkafka_dict(),
            "group.id": f"b-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    partitions = settings.topics.partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    ended: set[int] = set()
    events = 0
    started = time.perf_counter()
    while len(ended) < partitions:
        for msg in consumer.consume(1000, 1.0):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ended.add(msg.partition() or 0)
                continue
            events += len(envelope.decode(msg.value() or b"").events)
    elapsed = time.perf_counter() - started
    consumer.close()
    return Result("raw consume + decode", events / elapsed, "events/s", None)


def _waited_cpu(child: subprocess.Popen[bytes]) -> float:
    """A child's CPU seconds, read as it is reaped (this bench's only child to end)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@dataclass
class Alone:
    seconds: dict[str, float]
    cpu: dict[str, float]  # per process, the start-up measured together taken off


def run_alone(work: Path, feed: Feed, startup: dict[str, float]) -> Alone:
    """Each process in turn, on the input the ones before it wrote, nothing else running
    (the feed is written first, by the feeder alone)."""
    p = Pipeline(work, "one")
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    try:
        _waited_cpu(p.feed(feed))
        del p.children["feeder"]
        for name in [*STAGES, "sink"]:
            child = p.start(name)
            t0 = time.monotonic()
            seconds[name] = wait_until(partial(p.drained, name), f"{name} alone") - t0
            cpu[name] = max(0.0, cpu_seconds(child.pid) - startup[name])
            print(f"e2e: {name} alone: {seconds[name]:.1f} s, {cpu[name]:.1f} CPU s", flush=True)
            del p.children[name]  # done: its exit is expected
            child.terminate()
            child.wait(timeout=60)
        return Alone(seconds, cpu)
    finally:
        p.stop()


def bench_end_to_end(work: Path, customers: int = CUSTOMERS) -> list[Result]:
    feed = feed_file(customers)
    cores = os.cpu_count() or 1
    broker = broker_pid(os.environ.get("E2E_BROKER_INSTANCE", "bench"))
    print(f"e2e: {feed.events:,} events, every stage and the sink together ...", flush=True)
    together, pipeline = run_together(work, feed, broker)
    raw = raw_consume(pipeline.settings, pipeline.topics.raw)
    print("e2e: each process alone on the same events ...", flush=True)
    alone = run_alone(work, feed, together.startup_cpu)
    per_event = sum(alone.cpu.values()) / feed.events
    bound = cores / per_event if per_event else 0.0
    rate = feed.events / together.seconds
    results = [
        Result(
            f"end to end: {feed.events:,} events, all stages + sink (vs bound)",
            rate,
            "events/s",
            bound,
            ">= 15,000 and >= 0.6x the bound",
        ),
        Result(
            f"bound: {cores} cores / CPU per event alone (vs raw consume)",
            bound,
            "events/s",
            raw.value,
        ),
        Result("raw consume + decode of the same raw topic", raw.value, raw.unit, None),
    ]
    for name in [*STAGES, "sink"]:
        results.append(
            Result(
                f"{name}: CPU s together (vs alone)",
                together.cpu[name],
                "CPU s",
                alone.cpu[name] or None,
            )
        )
        results.append(Result(f"{name}: peak memory together", together.peak_mb[name], "MB", None))
    results.append(
        Result("feeder (journeys publish): CPU s, apart", together.cpu["feeder"], "CPU s", None)
    )
    if together.broker_cpu is not None:
        results.append(
            Result("broker: CPU s during the run, apart", together.broker_cpu, "CPU s", None)
        )
    return results


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="journeys-e2e-") as tmp:
        results = bench_end_to_end(Path(tmp))
    print(render(results))
    save(results, ROOT / ".local" / "bench" / "end_to_end.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
