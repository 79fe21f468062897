"""Benchmarks of the friction and alerts stage in faust, through the real local broker.

- **Throughput**: simulated touchpoints of every channel (100,000 customers, the steady
  second day of `journeys simulate`, its 24 hours squeezed into 6 so a 5-minute window holds
  about 2,000 events) written to `stitched` as the identity stage writes them: per-person
  partitions, envelopes of 500 events, each carrying a routing partition's watermark and
  `source`. The stage (friction and volume series, windows in its changelog, the detector
  on the summed windows) is timed between its first and last offset commit, beside raw
  consume + decode of the same topic in the same run. Stage series need the journeys
  stage's rows and are not in this figure (`friction.stage_series=false`).
- **Alert delay** in compressed real time: six simulated hours played at 240 times real time
  (a 5-minute window closes every 1.25 s), with five web checkout incidents of 15 minutes and
  a fixed threshold on that touchpoint, and a webhook receiver on this machine. Per alert:
  wall time from the moment the window that decided it could close (the first `stitched`
  message whose watermark passed its end, on every partition) to the webhook's arrival.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from producers.pii import PiiHasher
from producers.simulator.config import Incident, SimConfig
from producers.simulator.engine import Simulation
from schemas import envelope
from schemas.partitioning import partition_for
from schemas.settings import Settings
from schemas.topics import Topics
from schemas.touchpoint import Touchpoint
from stream_processors.friction.core.series import default_person
from tests.integration.helpers import terminate

from .pipeline import (
    PER_MESSAGE,
    _produce,
    producer_for,
    raw_consume,
    stage_rate,
    start_stage,
)
from .report import Result

START = datetime(2025, 3, 1, tzinfo=UTC)
LATENESS_MS = 120_000
WINDOW_MS = 300_000


def simulated(customers: int, incidents: tuple[Incident, ...] = ()) -> list[dict[str, Any]]:
    """The second day of a two-day simulation, as ingest and identity forward it."""
    config = SimConfig(
        customers=customers,
        days=2.0,
        start=START,
        seed=11,
        incidents=incidents,
        conversion_scale=1.5,
        support_journeys_per_day=0.3,
    )
    events, _ = Simulation(config, PiiHasher(Settings().pii)).run()
    day_two = START + timedelta(days=1)
    out = []
    for sim in events:
        if not day_two <= sim.occurred_at < config.end:
            continue
        doc = Touchpoint.model_validate(sim.event).normalize_utc().model_dump(mode="json")
        doc["person_id"] = default_person(doc)
        out.append(doc)
    return out


def squeezed(events: list[dict[str, Any]], factor: float) -> list[dict[str, Any]]:
    """Event times `factor` times closer together, from the first one."""
    first = datetime.fromisoformat(events[0]["occurred_at"])
    for event in events:
        at = datetime.fromisoformat(event["occurred_at"])
        event["occurred_at"] = (first + (at - first) / factor).isoformat()
    return events


def _ms(event: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(event["occurred_at"]).timestamp() * 1000)


def envelopes(events: list[dict[str, Any]], n: int) -> Iterator[tuple[int, bytes]]:
    """(partition, envelope) of 500 events per partition, in order; each carries the
    watermark so far (newest timely event - lateness) as routing partition `source`, round
    robin, so every partition hears every source as it would from the identity stage."""
    pending: dict[int, list[bytes]] = {p: [] for p in range(n)}
    sent = dict.fromkeys(range(n), 0)
    newest = 0
    for event in events:
        if event["channel"] in ("web", "app"):
            newest = max(newest, _ms(event))
        p = partition_for(event["person_id"].encode(), n)
        pending[p].append(orjson.dumps(event))
        if len(pending[p]) == PER_MESSAGE:
            yield p, envelope.encode(pending[p], newest - LATENESS_MS, sent[p] % n)
            pending[p], sent[p] = [], sent[p] + 1
    for p, rest in pending.items():
        if rest:
            yield p, envelope.encode(rest, newest - LATENESS_MS, sent[p] % n)


def bench_friction_stage(settings: Settings, log: Path, customers: int = 100_000) -> list[Result]:
    """Events/s of the friction stage in one worker, beside raw consume of `stitched`."""
    topics = Topics.from_settings(settings.topics)
    events = squeezed(simulated(customers), 4.0)
    producer = producer_for(settings, linger_ms=5)
    messages = 0
    for partition, message in envelopes(events, settings.topics.partitions):
        _produce(producer, topics.stitched, partition, message)
        messages += 1
    producer.flush(120)
    raw = raw_consume(settings, topics.stitched, messages)
    stage = stage_rate(
        settings,
        "friction",
        topics.stitched,
        log,
        f"faust friction stage: series, windows, detector ({len(events):,} events)",
        env={"JOURNEYS_FRICTION__STAGE_SERIES": "false"},
    )
    stage.baseline, stage.target = raw.value, ">= 50,000 events/s"
    return [raw, core_rate([m for _p, m in envelopes(events, 1)]), stage]


def core_rate(messages: list[bytes]) -> Result:
    """The same events through the friction core in this process, no Kafka: decode, count,
    advance and detect per message (the ceiling the stage's Kafka and state work is under)."""
    from schemas.friction import load_configured_mapping
    from stream_processors.core.friction_signals import FrictionMatcher
    from stream_processors.friction.core.detector import Detector
    from stream_processors.friction.core.series import FrictionSeries
    from stream_processors.friction.core.windows import TumblingWindows

    settings = Settings()
    windows = TumblingWindows(settings.friction.window, settings.friction.allowed_lateness)
    series = FrictionSeries(FrictionMatcher(load_configured_mapping(settings.friction)), windows)
    detector = Detector()
    events = 0
    started = time.perf_counter()
    for message in messages:
        decoded = envelope.decode(message)
        for event in decoded.events:
            series.count(event)
        events += len(decoded.events)
        if decoded.watermark_ms is not None:
            detector.process(series.advance(decoded.watermark_ms))
    elapsed = time.perf_counter() - started
    return Result(
        "friction core alone, same events (no Kafka, no state)", events / elapsed, "events/s", None
    )


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.arrivals: list[tuple[float, dict[str, Any]]] = []


class _Hook(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.arrivals.append((time.monotonic(), orjson.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


def bench_alert_delay(
    settings: Settings, log: Path, customers: int = 60_000, speed: float = 240.0
) -> list[Result]:
    """Seconds from a window closing to its alert at a local webhook receiver."""
    hour = 60
    incidents = tuple(
        Incident.parse(f"web:/checkout errors x15 @{(25 + k) * hour + 5}m for 15m")
        for k in range(5)
    )
    events = [e for e in simulated(customers, incidents) if _ms(e) < _ms_at(START, 30 * hour)]
    events = [e for e in events if _ms(e) >= _ms_at(START, 24 * hour)]
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    routing = log.parent / "delay-routing.toml"
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    routing.write_text(f'version = 1\n[default]\nteam = "bench"\nwebhook = "{url}"\n')
    env = {
        "JOURNEYS_ALERTS__ROUTING_FILE": str(routing),
        "JOURNEYS_FRICTION__STAGE_SERIES": "false",
        "JOURNEYS_FRICTION__DETECTOR__THRESHOLDS": orjson.dumps(
            [{"kind": "friction", "scope": "web:/checkout", "max_rate": 0.15}]
        ).decode(),
    }
    proc = start_stage(settings, "friction", log, **env)
    try:
        time.sleep(12.0)  # the worker joins its group and restores (empty) state first
        closes = _play(settings, events, speed)
        time.sleep(10.0)  # the last alerts resolve and reach the receiver
    finally:
        terminate(proc)
        receiver.shutdown()
        receiver.server_close()
    delays = []
    for arrived, body in receiver.arrivals:
        incident = body["incident"]
        end = int(datetime.fromisoformat(incident["last_window_end"]).timestamp() * 1000)
        if incident["status"] == "firing" and end in closes:
            delays.append(arrived - closes[end])
    if not delays:
        raise RuntimeError(f"no alert arrived: {log.read_text()[-2000:]}")
    delays.sort()
    return [
        Result(
            f"alert delay: window closed -> webhook received ({len(delays)} alerts, "
            f"{speed:g}x real time)",
            sum(delays) / len(delays),
            "s (mean)",
            None,
            "<= 10 s",
        ),
        Result("alert delay: worst", delays[-1], "s", None, "<= 10 s"),
    ]


def _ms_at(start: datetime, minutes: int) -> int:
    return int((start + timedelta(minutes=minutes)).timestamp() * 1000)


def _play(settings: Settings, events: list[dict[str, Any]], speed: float) -> dict[int, float]:
    """Publish `events` at `speed` times real time, in 100 ms ticks; every partition hears
    every source's watermark each tick. Returns window end -> wall time it could close."""
    topics = Topics.from_settings(settings.topics)
    n = settings.topics.partitions
    producer = producer_for(settings, linger_ms=5)
    first = _ms(events[0])
    began = time.monotonic()
    closes: dict[int, float] = {}
    newest, i = first, 0
    tick = 0.1
    while i < len(events):
        due = first + (time.monotonic() - began + tick) * speed * 1000
        batch: dict[int, list[bytes]] = {p: [] for p in range(n)}
        while i < len(events) and _ms(events[i]) <= due:
            event = events[i]
            if event["channel"] in ("web", "app"):
                newest = max(newest, _ms(event))
            batch[partition_for(event["person_id"].encode(), n)].append(orjson.dumps(event))
            i += 1
        watermark = newest - LATENESS_MS
        for p in range(n):
            for source in range(n):
                rows = batch[p] if source == p else []
                _produce(producer, topics.stitched, p, envelope.encode(rows, watermark, source))
        producer.flush(10)
        now = time.monotonic()
        edge = watermark - watermark % WINDOW_MS
        closes.setdefault(edge, now)
        time.sleep(max(0.0, tick - (time.monotonic() - now)))
    return closes


def main() -> None:
    """`python -m tests.bench.friction_stage`: these two figures alone (a broker must run;
    JOURNEYS_KAFKA__BOOTSTRAP_SERVERS names it), as `make bench` reports them."""
    import tempfile

    from .pipeline import bench_settings
    from .report import render

    with tempfile.TemporaryDirectory(prefix="journeys-bench-") as tmp:
        work = Path(tmp)
        results = bench_friction_stage(bench_settings(work), work / "friction.log")
        results += bench_alert_delay(bench_settings(work), work / "delay.log")
    print(render(results))


if __name__ == "__main__":
    main()
