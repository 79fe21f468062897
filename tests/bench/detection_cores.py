"""The pipeline's cores in one process, no broker: simulated deliveries through the ingest
core, the identity graph, the journey core and both halves of the friction stage, in the
order the stages would see them, on one partition.

Each step takes the deliveries of one tick of the simulated clock (the time they reached
the collector or an export landed), then moves event time as the stages do: the watermark
is the newest timely (web and app) event time minus the pipeline's allowed lateness. The
friction stage is driven through its own handlers (`FrictionPartitions`,
`FrictionDetection`) with a recording sender in place of Kafka, so what comes out is
exactly what the stage publishes on `alerts`: the JSON rows, read back here as plain dicts,
each stamped with the simulated clock at which it was published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas import envelope
from schemas.alerting import load_alert_routing
from schemas.definitions import load_definitions
from schemas.friction import load_configured_mapping
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.core.friction_signals import FrictionMatcher
from stream_processors.friction.alerts.core.routing import AlertRouter
from stream_processors.friction.detection import DETECTOR, FrictionDetection
from stream_processors.friction.partitions import FrictionPartitions
from stream_processors.identity.core.graph import IdentityGraph
from stream_processors.ingest.core.admission import Ingest
from stream_processors.journeys.core.engine import JourneyCore
from stream_processors.journeys.core.settings import JourneySettings
from stream_processors.journeys.core.signals import mapped_signals
from stream_processors.journeys.rows import Outputs
from stream_processors.runtime.state import Applied as _Applied
from stream_processors.runtime.state import ChangelogTable, PartitionState
from tests.unit.senders import RowsAtOnce

IDENTIFIERS = ("customer_id", "loyalty_id", "email_hash", "phone_hash", "device_id", "anonymous_id")
TIMELY = ("web", "app")


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


class RecordingSender(RowsAtOnce):
    """In place of the transactional producer: keeps what the stage produces until taken;
    `commit` runs the hooks a transaction commit runs (the tables' flushes)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None]] = []
        self.hooks: list[Callable[[], None]] = []

    def before_commit(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        self.records.append((topic, value))

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def commit(self) -> None:
        for hook in self.hooks:
            hook()

    def take(self, topic: str) -> list[bytes]:
        """What was produced to `topic` since the last take, in order; the rest is dropped
        (changelog records: nothing here restores from them)."""
        out = [v for t, v in self.records if t == topic and v is not None]
        self.records = [(t, v) for t, v in self.records if t != topic]
        return out

    def clear(self) -> None:
        self.records.clear()


def _table(sender: RecordingSender, name: str) -> ChangelogTable:
    table = ChangelogTable(name, f"bench.friction.{name}.changelog", sender, kafka=None)  # type: ignore[arg-type]
    table.partitions[0], table.applied[0] = PartitionState(), _Applied()
    return table


def bench_settings(**friction: Any) -> Settings:
    """The shipped settings, on one partition (the detector's sums are the same)."""
    return Settings(topics={"prefix": "bench.", "partitions": 1}, friction=friction)


@dataclass
class Published:
    """An alert row as the stage published it, and the simulated clock at that moment."""

    at: datetime
    row: dict[str, Any]


@dataclass
class CorePipeline:
    """Every stage's core on one partition; feed it `step`s in clock order."""

    settings: Settings = field(default_factory=bench_settings)
    published: list[Published] = field(default_factory=list)
    # Called with each global window row the stage publishes on `friction-windows`.
    on_window: Callable[[dict[str, Any]], None] | None = None
    commit_every: int = 60  # steps per transaction: what the stage persists, it persists then
    events_in: int = 0
    steps: int = 0

    def __post_init__(self) -> None:
        s = self.settings
        self.topics = Topics.from_settings(s.topics)
        self.ingest = Ingest(
            {}, timedelta(days=7), timedelta(minutes=5), frozenset(s.processor.late_channels)
        )
        self.graph = IdentityGraph()
        mapping = load_configured_mapping(s.friction)
        self.journeys = JourneyCore(
            load_definitions(s.journeys.definitions),
            JourneySettings(
                session_gap_ms=_ms(s.journeys.session_gap),
                late_channels=frozenset(s.processor.late_channels),
                late_tolerance_ms=_ms(s.journeys.late_tolerance),
            ),
            signals=mapped_signals(FrictionMatcher(mapping)),
        )
        self.sender = RecordingSender()
        windows, transitions, dropoffs = (
            _table(self.sender, n) for n in ("windows", "transitions", "dropoffs")
        )
        sender: Any = self.sender
        self.friction = FrictionPartitions(
            s, self.topics, sender, windows, transitions, dropoffs, mapping
        )
        routing = s.alerts.routing_file
        router = AlertRouter(load_alert_routing(routing)) if routing is not None else None
        self.detector_table = _table(self.sender, "detector")
        self.detector_table.partitions[DETECTOR] = self.detector_table.partitions.pop(0)
        self.detector_table.applied[DETECTOR] = self.detector_table.applied.pop(0)
        self.detection = FrictionDetection(s, self.topics, sender, self.detector_table, router)
        self.lateness_ms = _ms(s.processor.allowed_lateness)
        self.newest_ms: int | None = None
        self._offsets = {"stitched": 0, "transitions": 0, "dropoffs": 0, "partials": 0}

    def step(self, now: datetime, events: Iterable[dict[str, Any]]) -> None:
        """The deliveries of one tick (`now` on the simulated clock), then time moves."""
        batch = list(events)
        admitted = self.ingest.process(batch, now) if batch else None
        self.ingest.expire(now)
        stitched: list[dict[str, Any]] = []
        if admitted is not None:
            for fragment in admitted.fragments:
                event = orjson.loads(fragment)
                person = self._stitch(event)
                if person is not None:
                    event["person_id"] = person
                    stitched.append(event)
            if admitted.max_occurred_ms is not None:
                newest = admitted.max_occurred_ms
                self.newest_ms = newest if self.newest_ms is None else max(self.newest_ms, newest)
        self.events_in += len(stitched)
        watermark = None if self.newest_ms is None else self.newest_ms - self.lateness_ms
        self._journeys(stitched, watermark)
        self._friction_stitched(stitched, watermark)
        self._detect(now)
        self.steps += 1
        if self.steps % self.commit_every == 0:
            self.sender.commit()
        self._collect(now)

    # -- identity and journeys ------------------------------------------------------------

    def _stitch(self, event: dict[str, Any]) -> str | None:
        identity = event.get("identity") or {}
        ids = {name: identity.get(name) for name in IDENTIFIERS}
        at = datetime.fromisoformat(event["occurred_at"])
        found = self.graph.observe(ids, at, event["event_id"])
        out = Outputs()
        for merge in found.merges:
            for old in merge.old_person_ids:
                if old != merge.person_id:
                    out.add(self.journeys.move_person(old, merge.person_id))
        self._send_journeys(out, None)
        return found.person_id

    def _journeys(self, stitched: list[dict[str, Any]], watermark: int | None) -> None:
        out = Outputs()
        out.add(self.journeys.observe_batch((e, e["person_id"]) for e in stitched))
        if watermark is not None and watermark > self.journeys.watermark_ms:
            out.add(self.journeys.advance_watermark(watermark))
            out.moved = True
        self.journeys.take_dirty()
        self._send_journeys(out, watermark if out.moved else None)

    def _send_journeys(self, out: Outputs, watermark: int | None) -> None:
        if out.transitions or watermark is not None:
            message = envelope.encode(out.transitions, watermark, 0)
            self.friction.handle_transitions(message, 0, self._next("transitions"))
        if out.dropoffs or watermark is not None:
            message = envelope.encode(out.dropoffs, watermark, 0)
            self.friction.handle_dropoffs(message, 0, self._next("dropoffs"))

    # -- friction -------------------------------------------------------------------------

    def _friction_stitched(self, stitched: list[dict[str, Any]], watermark: int | None) -> None:
        rows = [orjson.dumps(e) for e in stitched]
        message = envelope.encode(rows, watermark, 0 if watermark is not None else None)
        self.friction.handle_stitched(message, 0, self._next("stitched"))

    def _detect(self, now: datetime) -> None:
        for message in self.sender.take(self.topics.friction_partials):
            self.detection.handle(message, self._next("partials"))

    def _collect(self, now: datetime) -> None:
        for value in self.sender.take(self.topics.alerts):
            self.published.append(Published(now, orjson.loads(value)))
        if self.on_window is not None:
            for value in self.sender.take(self.topics.friction_windows):
                for row in envelope.decode(value).events:
                    self.on_window(row)
        self.sender.clear()

    def _next(self, what: str) -> int:
        self._offsets[what] += 1
        return self._offsets[what]


def clock_ticks(
    deliveries: Iterable[tuple[datetime, dict[str, Any]]], tick: timedelta
) -> Iterable[tuple[datetime, list[dict[str, Any]]]]:
    """Deliveries (in clock order) grouped per `tick` of the simulated clock; a tick with
    none still comes, so time moves on through a quiet stretch."""
    current: datetime | None = None
    batch: list[dict[str, Any]] = []
    for at, event in deliveries:
        edge = _floor(at, tick)
        if current is None:
            current = edge
        while edge > current:
            yield current + tick, batch
            batch, current = [], current + tick
        batch.append(event)
    if current is not None:
        yield current + tick, batch


def _floor(at: datetime, tick: timedelta) -> datetime:
    step = _ms(tick)
    ms = int(at.timestamp() * 1000)
    return datetime.fromtimestamp((ms - ms % step) / 1000, UTC)
