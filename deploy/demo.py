"""`make demo`: a local broker, every stage (ingest, identity, journeys, friction) and the
ClickHouse sink on simulated multi-channel traffic with two incidents on the second day, then
a summary of what arrived, what the journeys stage found, and each alert the friction stage
raised with its likely cause and how long after its incident began it fired (event time).
Stops everything it started, also on Ctrl-C or failure."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from deploy.kafka_admin import ensure_topics, group_drained, group_lag
from deploy.local.broker import LocalBroker
from deploy.report import (
    dead_letter_reasons,
    journey_summary,
    render,
    render_journeys,
    touchpoint_summary,
)
from producers.files import publish_items
from producers.pii import PiiHasher
from producers.simulator.config import Incident, SimConfig
from producers.simulator.engine import Simulation
from producers.simulator.runner import publish_events, send_heartbeats
from producers.simulator.truth import GroundTruth
from producers.synthetic import generate
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import connect
from sinks.runner import pipeline_routes
from stream_processors.friction.alerts.core.causes import place
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.runtime.topic_reader import read_to_end

DEMO_PORT = 19292
# On the second day, when journeys have reached every stage and the baselines have a day of
# history: errors on the web search page (a friction incident: 3% -> 60% of its views; the
# first stage, so nobody is kept from reaching it), then a checkout whose confirmation
# silently fails for an hour (progress 70% -> 5%, no error event: only drop-off shows it).
INCIDENT_SPECS = (
    "web:/search errors x20 @1680m for 60m",
    "web:/checkout/done stall x20 @2160m for 60m",
)
INCIDENTS = tuple(Incident.parse(spec) for spec in INCIDENT_SPECS)


def run_demo(base: Settings, customers: int, port: int = DEMO_PORT, instance: str = "demo") -> int:
    """Run the walking skeleton end to end; return a process exit code. `instance` names
    the broker's own folder and the demo's ClickHouse folder (`<data_dir>/<instance>/`)."""
    local = base.local_broker.model_copy(
        update={"instance": instance, "port": port, "controller_port": port + 1}
    )
    broker = LocalBroker(local, base.data_dir)
    ch_dir = base.data_dir / instance / "clickhouse"
    shutil.rmtree(ch_dir, ignore_errors=True)
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    env = {
        **os.environ,
        "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "JOURNEYS_TOPICS__PREFIX": f"demo-{run_id}.",
        "JOURNEYS_CLICKHOUSE__DSN": f"chdb://{ch_dir}",
        "JOURNEYS_PROCESSOR__METRICS_PORT": "0",
        "JOURNEYS_LOG_FORMAT": "text",
        "JOURNEYS_LOG_LEVEL": "WARNING",
        "JOURNEYS_DATA_DIR": str(base.data_dir),
        # Event time moves with the simulated events and the final heartbeat only: a quiet
        # partition following the wall clock would jump days past the simulated traffic.
        "JOURNEYS_PROCESSOR__IDLE_AFTER_SECONDS": "0",
    }
    settings = Settings(
        kafka=base.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap}),
        topics=base.topics.model_copy(update={"prefix": env["JOURNEYS_TOPICS__PREFIX"]}),
        data_dir=base.data_dir,
    )
    children: list[subprocess.Popen[bytes]] = []
    print(f"[demo] starting Kafka ({broker.bootstrap}) ...", flush=True)
    started = broker.start()
    try:
        ensure_topics(settings)
        cli = [sys.executable, "-m", "deploy.cli"]
        children.append(subprocess.Popen([*cli, "process", "ingest"], env=env))
        children.append(subprocess.Popen([*cli, "process", "identity"], env=env))
        children.append(subprocess.Popen([*cli, "process", "journeys"], env=env))
        friction = subprocess.Popen([*cli, "process", "friction"], env=env)
        children.append(friction)
        # Stopped once it has committed everything (below), not on idleness: on a slow
        # machine the simulation alone can outlast any idle limit, and the sink would exit
        # before the first touchpoint reached it.
        sink = subprocess.Popen([*cli, "sink"], env=env)
        children.append(sink)
        t0 = time.monotonic()
        truth = _publish_traffic(settings, customers)
        alerts = _alerts_on_the_traffic(settings, children, friction)
        # Past every time limit, so that the journeys stage reports each drop-off; the
        # friction stage has stopped: days with no traffic would only page that every
        # source went quiet.
        send_heartbeats(settings, int(truth.closes_at.timestamp() * 1000))
        _wait_for_pipeline(settings, children, sink)
        elapsed = time.monotonic() - t0
        client = connect(f"chdb://{ch_dir}")
        summary = touchpoint_summary(client)
        found = journey_summary(client)
        summary.dead_letters = dead_letter_reasons(
            settings.kafka, Topics.from_settings(settings.topics).dlq_ingest
        )
        print()
        print(render(summary))
        print()
        print(render_journeys(found))
        outcomes = Counter(j.outcome for j in truth.journeys)
        print(
            f"\n[demo] simulated {truth.events:,} touchpoints of {len(truth.persons):,} persons "
            f"(stitched in ClickHouse: {summary.persons:,}) "
            f"in {len(truth.journeys):,} journeys ({outcomes['converted']:,} converted, "
            f"{outcomes['dropped_off']:,} dropped off); in ClickHouse after {elapsed:.1f}s"
        )
        stored: Counter[str] = Counter()
        for key, n in found.outcomes.items():
            stored[key.split(": ")[1]] += n
        print(
            f"[demo] the journeys stage found {stored['converted']:,} converted and "
            f"{stored['dropped_off']:,} dropped off (compare: the simulator's ground truth above)"
        )
        print()
        print(render_alerts(alerts, truth))
        print(where_to_look(ch_dir))
        return 0
    finally:
        for child in children:
            _stop(child)
        if started:
            broker.stop()
            print("[demo] Kafka stopped")


def where_to_look(ch_dir: Path) -> str:
    """The demo's last words: where its data stays, and the one command that queries it."""
    return (
        f"[demo] its ClickHouse data stays in {ch_dir}; query it with:\n"
        f"  JOURNEYS_CLICKHOUSE__DSN=chdb://{ch_dir} journeys query funnel --by stage_channel"
    )


def _wait_for_pipeline(
    settings: Settings, children: list[subprocess.Popen[bytes]], sink: subprocess.Popen[bytes]
) -> None:
    """Until every stage and the sink have committed all there is, then stop the sink."""
    print("[demo] waiting for the stages and the sink to catch up ...", flush=True)
    topics = Topics.from_settings(settings.topics)
    sink_group = settings.sink.group_id or settings.topics.group("sink")
    _wait_for_journeys(settings, children)
    _wait_until(
        lambda: group_drained(settings, sink_group, list(pipeline_routes(topics))),
        children,
        "the ClickHouse sink",
    )
    _stop(sink)  # it writes what it holds and closes ClickHouse, which we open next
    if sink.returncode != 0:
        raise RuntimeError(f"the sink exited with {sink.returncode}")


def _wait_for_journeys(settings: Settings, children: list[subprocess.Popen[bytes]]) -> None:
    topics = Topics.from_settings(settings.topics)
    _wait_for_lag(settings, settings.topics.group("ingest"), topics.raw, children)
    _wait_until(
        lambda: group_drained(
            settings,
            settings.topics.group("identity"),
            [topics.touchpoints, topics.identity_links],
        ),
        children,
        "the identity stage",
    )
    journey_inputs = [topics.stitched, topics.identity_merges, topics.journey_handoff]
    _wait_until(
        lambda: group_drained(settings, settings.topics.group("journeys"), journey_inputs),
        children,
        "the journeys stage",
    )


def _alerts_on_the_traffic(
    settings: Settings, children: list[subprocess.Popen[bytes]], friction: subprocess.Popen[bytes]
) -> list[AlertRecord]:
    """Once the friction stage has read all the traffic: its alerts; then it stops."""
    print("[demo] waiting for the friction stage to read the traffic ...", flush=True)
    _wait_for_journeys(settings, children)
    topics = Topics.from_settings(settings.topics)
    inputs = [
        topics.stitched,
        topics.journey_transitions,
        topics.journey_dropoffs,
        topics.friction_partials,
    ]
    _wait_until(
        lambda: group_drained(settings, settings.topics.group("friction"), inputs),
        children,
        "the friction stage",
    )
    alerts = read_alerts(settings)
    _stop(friction)  # (`_wait_until` raised if it had exited on its own)
    children.remove(friction)
    return alerts


def _publish_traffic(settings: Settings, customers: int) -> GroundTruth:
    """Two simulated days of journeys, plus what real traffic also has: about 1% of events
    sent twice (client retries) and a share of invalid payloads."""
    config = demo_traffic(customers)
    events, truth = Simulation(config, PiiHasher(settings.pii)).run()
    rng = random.Random(1)
    retries = rng.sample(events, k=len(events) // 100)
    bad = [i for i in generate(len(events) // 50, seed=2, invalid_ratio=1.0, start=config.start)]
    print(
        f"[demo] publishing {len(events):,} simulated touchpoints of {customers:,} customers "
        f"(2 days; incidents: {'; '.join(INCIDENT_SPECS)}), {len(retries):,} repeats, "
        f"{len(bad):,} invalid"
    )
    publish_events(settings, events + retries, rate=None)
    publish_items(settings, bad, total=len(bad))
    return truth


def demo_traffic(customers: int) -> SimConfig:
    """The demo's two simulated days, with its incidents."""
    # Most customers move on within minutes and checkout converts 70%, so that checkout sees
    # about as many journeys as the stages before it: enough to alert on in a small demo.
    return SimConfig(
        customers=customers,
        days=2.0,
        incidents=INCIDENTS,
        stage_conversion={"discover": 0.85, "consider": 0.7, "cart": 0.8, "checkout": 0.7},
        progress_times="quick",
    )


def read_alerts(settings: Settings) -> list[AlertRecord]:
    """Every version of every alert the friction stage published, in order."""
    topic = Topics.from_settings(settings.topics).alerts
    return [
        AlertRecord.from_dict(orjson.loads(m.value()))
        for m in read_to_end(settings.kafka, topic)
        if m.value() is not None
    ]


def render_alerts(records: list[AlertRecord], truth: GroundTruth) -> str:
    """Each alert as it first fired: its series, team and likely cause, and its delay in
    event time from the start of the incident running then (the end of the window that
    decided it: the stage fires as the watermark passes it)."""
    first: dict[str, AlertRecord] = {}
    for record in records:
        if record.status == "firing":
            first.setdefault(record.incident_id, record)
    lines = [f"Alerts raised: {len(first)}"]
    for record in sorted(first.values(), key=lambda r: r.last_window_end):
        lines.append(
            f"  {record.last_window_end:%a %H:%M} {record.kind} at {place(record.series)} "
            f"({record.series}), team {record.team or '-'}"
        )
        lines.append(f"      {record.explanation}")
        lines.append(f"      likely cause: {record.cause or '-'}")
        lines.append(f"      {_delay(record, truth)}")
    for incident in truth.incidents:
        spec = incident.incident
        lines.append(
            f"Incident {spec.channel}:{spec.touchpoint} {spec.kind} "
            f"{incident.starts_at:%a %H:%M}-{incident.ends_at:%H:%M} UTC"
        )
    return "\n".join(lines)


def _delay(record: AlertRecord, truth: GroundTruth) -> str:
    decided = record.last_window_end
    running = [
        i for i in truth.incidents if i.starts_at <= decided <= i.ends_at + timedelta(hours=2)
    ]
    if not running and decided > truth.end:
        return "after the simulated traffic ended: its sources went quiet"
    if not running:
        return "no incident was running: a false alert"
    incident = max(running, key=lambda i: i.starts_at)
    minutes = (decided - incident.starts_at) / timedelta(minutes=1)
    spec = incident.incident
    return (
        f"fired {minutes:.0f} min (event time) after {spec.channel}:{spec.touchpoint} "
        f"{spec.kind} began"
    )


def _wait_for_lag(
    settings: Settings,
    group: str,
    topic: str,
    children: list[subprocess.Popen[bytes]],
    timeout: float = 600.0,
) -> None:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        for child in children:
            if child.returncode is None and child.poll() not in (None, 0):
                raise RuntimeError(f"{child.args!r} exited with {child.returncode}")
        lag = group_lag(settings, group, topic)
        if lag == 0:
            return
        if lag != last:
            print(f"[demo] ingest lag: {lag:,} messages", flush=True)
            last = lag
        time.sleep(1.0)
    raise TimeoutError(f"{group} did not catch up on {topic} within {timeout:.0f}s")


def _wait_until(
    done: Callable[[], bool],
    children: list[subprocess.Popen[bytes]],
    what: str,
    timeout: float = 600.0,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            if child.returncode is None and child.poll() not in (None, 0):
                raise RuntimeError(f"{child.args!r} exited with {child.returncode}")
        if done():
            return
        time.sleep(1.0)
    raise TimeoutError(f"{what} did not catch up within {timeout:.0f}s")


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
