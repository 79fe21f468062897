"""The faults, one per run: each waits until the stream is well under way, injects its fault
and returns the seconds from the restart to processing again (None where nothing restarts).

A run starts the pipeline, drives the input through it while the fault is injected, closes
the simulated time, waits until every group has committed everything, and stops it all
cleanly; whatever it started is reaped by pid on the way out, also on failure."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.runtime.worker_id import client_id
from tests.integration.helpers import committed_some, journeys, uncommitted_input, wait_for

from .feed import Driver, Input
from .pipeline import STAGES, Pipeline, progress, resume_seconds, served_at
from .results import Snapshot

SHARE = 0.4  # the fault comes once this share of the simulated events is published


@dataclass
class Run:
    settings: Settings
    folder: Path
    feed: Input
    rate: float
    workers: Mapping[str, int] = field(default_factory=dict)  # per stage; 1 where not given
    sinks: int = 1
    serve_port: int | None = None
    joining: bool = False  # the second and later of each part are started by the fault
    pipeline: Pipeline | None = None
    driver: Driver | None = None
    found: Snapshot | None = None  # what the run left in ClickHouse

    def execute(self, fault: Fault) -> float | None:
        pipeline = Pipeline(
            self.settings,
            self.folder,
            workers=self.workers,
            sinks=self.sinks,
            serve_port=self.serve_port,
            joining=self.joining,
        )
        self.pipeline = pipeline
        try:
            pipeline.start()
            driver = Driver(
                self.settings, self.feed, pipeline.collector_port, pipeline.log, self.rate
            )
            self.driver = driver
            driver.start()
            driver.wait_for_share(SHARE, pipeline.check_alive)
            resume = fault(self)
            driver.join()
            pipeline.drain()
            self.found = pipeline.snapshot()
            pipeline.stop()
            return resume
        finally:
            pipeline.reap()

    @property
    def p(self) -> Pipeline:
        assert self.pipeline is not None
        return self.pipeline

    def watch(self) -> None:
        self.p.check_alive()


Fault = Callable[[Run], float | None]


def no_fault(_run: Run) -> None:
    return None


def mid_stream(run: Run, stage: str) -> None:
    """Wait until `stage` has committed some input and has more in hand, uncommitted."""
    topic = Topics.from_settings(run.settings.topics)
    first = {"ingest": topic.raw, "identity": topic.touchpoints, "sink": topic.stitched}.get(
        stage, topic.stitched
    )
    group = run.settings.topics.group(stage)
    wait_for(
        lambda: (
            committed_some(run.settings, group, first)
            and uncommitted_input(run.settings, group, first)
        ),
        300,
        f"{stage} to be mid-stream",
        run.p.running(),
        run.p.log,
    )


def kill_worker(name: str) -> Fault:
    """SIGKILL a stage worker mid-stream and start it again at once with its worker id."""
    stage = name.partition("-")[0]

    def fault(run: Run) -> float:
        mid_stream(run, stage)
        run.p.kill(name)
        run.p.launch(name)
        return resume_seconds(run.settings, stage, time.monotonic(), run.watch)

    return fault


def kill_sink_three_times(run: Run) -> float:
    """SIGKILL the sink mid-stream, start it again, wait until it commits, three times in a
    row; the longest of the three resumes."""
    resumes = []
    for _ in range(3):
        assert run.driver is not None and run.driver.running(), "the feed ended: not mid-stream"
        mid_stream(run, "sink")
        run.p.kill("sink")
        run.p.launch("sink")
        resumes.append(resume_seconds(run.settings, "sink", time.monotonic(), run.watch))
    return max(resumes)


def rebalance(run: Run, away: float) -> float:
    """Two journeys workers; one SIGKILLed mid-stream (its partitions move to the other) and
    started again `away` seconds later (they move back). Resumed: the returning worker is a
    new member of the group (not the dead one's membership, which outlives it until its
    session times out) and the group commits."""
    mid_stream(run, "journeys")
    worker = client_id(run.p.worker_id("journeys-1"))
    dead = {m for c, m in members(run.settings, "journeys") if c == worker}
    run.p.kill("journeys-1")
    time.sleep(away)
    proc = run.p.launch("journeys-1")
    started = time.monotonic()
    wait_for(
        lambda: any(c == worker and m not in dead for c, m in members(run.settings, "journeys")),
        300,
        "the returning journeys worker to join",
        [proc],
        run.p.log,
    )
    return resume_seconds(run.settings, "journeys", started, run.watch)


def scale_out(run: Run) -> float:
    """The second worker of every stage and the second sink start mid-stream: every group
    rebalances while its members have work in hand. Until every newcomer is a member of its
    group the feed trickles in (so there is always some), and goes no further than 30% past
    the fault (so the rest goes to two of each however slowly they start). Resumed: every
    newcomer is a member of its group."""
    assert run.driver is not None and run.driver.running(), "the feed ended: not mid-stream"
    run.driver.hold_back(gap=0.5, until=SHARE + 0.3)
    try:
        started = time.monotonic()
        for name in run.p.joiners():
            run.p.launch(name)
        wait_for(
            lambda: all_joined(run),
            300,
            "the second workers and sink to join",
            run.p.running(),
            run.p.log,
        )
        return time.monotonic() - started
    finally:
        run.driver.release()


def all_joined(run: Run) -> bool:
    """Every stage worker is a member of its stage's group, and the sink's group has as many
    members as there are sinks (the sinks go by no client id of their own)."""
    for stage in STAGES:
        mine = {client_id(run.p.worker_id(n)) for n in run.p.procs if n.partition("-")[0] == stage}
        if not mine <= {c for c, _ in members(run.settings, stage)}:
            return False
    return len(members(run.settings, "sink")) >= run.p.sinks


def members(settings: Settings, stage: str) -> list[tuple[str, str]]:
    """(client id, member id) of each member of a stage's group."""
    admin = AdminClient(settings.kafka.as_librdkafka_dict())
    group = settings.topics.group(stage)
    try:
        found = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    except Exception:  # coordinator moving
        return []
    return [(str(m.client_id), str(m.member_id)) for m in found.members]


def clickhouse_outage(seconds: float) -> Fault:
    """The `db serve` the sink writes through stops answering for `seconds`, then comes back
    on the same port; the sink, untouched, must ride it out."""

    def fault(run: Run) -> float:
        mid_stream(run, "sink")
        serve = run.p.procs.pop("serve")
        serve.terminate()
        assert serve.wait(60) == 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            run.watch()
            time.sleep(0.5)
        run.p.serve()
        assert served_at(run.settings).startswith("http://")
        return resume_seconds(run.settings, "sink", time.monotonic(), run.watch)

    return fault


def broker_restart(
    broker_stop: Callable[[], object], broker_start: Callable[[], object], away: float
) -> Fault:
    """The broker stops mid-stream and starts again `away` seconds later; nothing else is
    touched. Resumed: the ingest and the sink groups commit again (the longer of the two)."""

    def fault(run: Run) -> float:
        mid_stream(run, "ingest")
        broker_stop()
        time.sleep(away)
        broker_start()
        started = time.monotonic()
        return max(
            resume_seconds(run.settings, group, started, run.watch) for group in ("ingest", "sink")
        )

    return fault


POISON = b'{"envelope": "journeys.batch", "v": 1, "events": [ not json'
WRONG_VERSION = b'{"envelope":"journeys.batch","v":99,"watermark":null,"events":[]}'
# A touchpoint the ingest stage would never forward: its event id is not a UUID.
BAD_TOUCHPOINT = orjson.dumps(
    {
        "event_id": "not-a-uuid",
        "channel": "web",
        "source": "web-shop",
        "event_type": "page_view",
        "schema_version": 1,
        "occurred_at": "2026-01-01T00:00:00.000Z",
        "received_at": "2026-01-01T00:00:00.000Z",
        "identity": {"anonymous_id": "chaos-poison"},
        "properties": {},
    }
)


def poison_inputs(run: Run) -> None:
    """An undecodable record and a wrong-version envelope on every input topic of every stage
    (and a touchpoint with a malformed event id on `touchpoints`), mid-stream."""
    from tests.integration.helpers import stage_topics

    mid_stream(run, "ingest")
    producer = Producer(run.settings.kafka.as_librdkafka_dict())
    inputs = stage_topics(run.settings, "ingest", "identity", "journeys", "friction")
    meta = producer.list_topics(timeout=30)
    for topic in sorted({t for topics in inputs.values() for t in topics}):
        # Partition 1 where there is one: the one-partition topics (identity-links,
        # friction-partials) take it on their only partition.
        partition = 1 if len(meta.topics[topic].partitions) > 1 else 0
        for payload in (POISON, WRONG_VERSION):
            producer.produce(topic, payload, partition=partition)
    producer.produce(
        Topics.from_settings(run.settings.topics).touchpoints, BAD_TOUCHPOINT, partition=1
    )
    assert producer.flush(30) == 0


def same_worker_id(run: Run) -> None:
    """A second ingest worker with the running one's worker id (another host: its own data
    folder) is refused at start, naming the setting; the running one goes on."""
    mid_stream(run, "ingest")
    log = run.folder / "second.log"
    worker = f"{run.settings.processor.worker_id}-ingest"
    second = journeys(
        run.settings,
        "process",
        "ingest",
        log=log,
        JOURNEYS_PROCESSOR__WORKER_ID=worker,
        JOURNEYS_DATA_DIR=str(run.folder / "other-host"),
    )
    try:
        assert second.wait(120) == 2, log.read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    said = log.read_text().splitlines()[-1]
    assert "JOURNEYS_PROCESSOR__WORKER_ID" in said and worker in said, said
    run.watch()
    before = progress(run.settings, "ingest")
    wait_for(
        lambda: progress(run.settings, "ingest") > before,
        120,
        "the first ingest worker to go on",
        run.p.running(),
        run.p.log,
    )
