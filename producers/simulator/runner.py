"""Publishing a simulation: as fast as possible or at a chosen rate, then watermark heartbeats
past the last deadline so a run closes its own event time; the ground truth goes to a file."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from confluent_kafka import Producer

from producers.files import Progress, publisher
from producers.pii import PiiHasher
from producers.simulator.config import SimConfig
from producers.simulator.engine import SimEvent, Simulation
from producers.simulator.truth import GroundTruth
from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics


def simulate(
    settings: Settings,
    config: SimConfig,
    truth_path: Path | None,
    rate: float | None = None,
    *,
    write: Path | None = None,
) -> GroundTruth:
    """Run the simulation and publish it to `raw` (or `write` it to a JSON Lines file);
    return (and write) the ground truth."""
    events, truth = Simulation(config, PiiHasher(settings.pii)).run()
    if truth_path is not None:
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        truth_path.write_text(truth.model_dump_json(indent=1))
    if write is not None:
        write.parent.mkdir(parents=True, exist_ok=True)
        with open(write, "wb") as out:
            for sim in events:
                out.write(orjson.dumps(sim.event) + b"\n")
        return truth
    publish_events(settings, events, rate)
    send_heartbeats(settings, int(truth.closes_at.timestamp() * 1000))
    return truth


def publish_events(settings: Settings, events: list[SimEvent], rate: float | None) -> None:
    pub = publisher(settings)
    progress = Progress("simulate", len(events))
    started = time.monotonic()
    for n, sim in enumerate(events, start=1):
        pub.publish_fragment(sim.key, orjson.dumps(sim.event))
        if rate:
            ahead = n / rate - (time.monotonic() - started)
            if ahead > 0:
                pub.drain()
                time.sleep(ahead)
        progress.update(n)
    pub.flush()
    progress.update(len(events), force=True)


def send_heartbeats(settings: Settings, watermark_ms: int) -> None:
    """One empty envelope per partition carrying `watermark_ms`: time has passed, everywhere."""
    topic = Topics.from_settings(settings.topics).raw
    producer = Producer(
        {**settings.kafka.as_librdkafka_dict(), "enable.idempotence": True, "acks": "all"}
    )
    partitions = len(producer.list_topics(topic, timeout=10).topics[topic].partitions)
    for p in range(partitions):
        producer.produce(topic, envelope.encode([], watermark_ms), partition=p)
    if producer.flush(30):
        raise RuntimeError("watermark heartbeats were not acknowledged")
