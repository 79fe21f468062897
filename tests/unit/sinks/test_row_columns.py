"""Every row a stage emits has exactly its ClickHouse table's columns.

The sink passes rows through untouched and ClickHouse skips unknown fields and fills missing
ones with defaults, so a misspelled or forgotten field would go unnoticed there. Here the real
stages (ingest, identity, journeys, friction) run without Kafka on a small simulated stream,
one in-memory bus standing in for every transactional producer; each row of every topic the
sink reads is split out as the sink splits it (`rows_of`) and compared with its table
(`pipeline_routes`, `sinks.tables.metadata`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from producers.pii import PiiHasher
from producers.simulator.config import Incident, SimConfig
from producers.simulator.engine import Simulation
from schemas import envelope
from schemas.definitions import load_definitions
from schemas.friction import load_configured_mapping
from schemas.settings import PiiSettings, Settings
from schemas.topics import Topics
from sinks.batching import rows_of
from sinks.runner import pipeline_routes
from sinks.tables import metadata
from stream_processors.friction.alerts.core.silences import Silence
from stream_processors.friction.detection import DETECTOR, FrictionDetection
from stream_processors.friction.partitions import FrictionPartitions
from stream_processors.identity.core.routing import Router
from stream_processors.identity.stage import AUTHORITY, Resolving, Routing
from stream_processors.ingest.stage import IngestStage
from stream_processors.journeys.stage import JourneyStage
from stream_processors.runtime.state import Applied, ChangelogTable, PartitionState
from tests.unit.senders import RowsAtOnce

PARTITIONS = 2
LATE = ("store", "call_center")
START = datetime(2025, 3, 3, tzinfo=UTC)
DAYS = 1.0
# Past every time limit, reopen window and late tolerance of the simulated day: every journey
# ends, every session closes.
CLOSE = START + timedelta(days=DAYS + 4)

# Fields a topic's rows carry beyond their table's columns, and why. Nothing else may differ.
EXTRA: dict[str, set[str]] = {
    # The alerts topic also feeds the webhooks and `journeys alerts show`, which read the
    # whole record (`AlertRecord.to_dict`); the table keeps its flat columns.
    "alerts": {"series", "related"},
}
# Columns a table may fill itself (a row may leave them out), and why. Nothing else.
DEFAULTED: dict[str, set[str]] = {
    # Contract v2's typed channel blocks and stated friction: ingest forwards an event's
    # fields as they came (it rewrites no event), so a version 1 event has none of them and
    # the table reads NULL and []. Likewise contract v3's attribution (a tuple of NULLs).
    "touchpoints": {"web", "app", "call_center", "store", "friction", "attribution"},
}


class Bus(RowsAtOnce):
    """Every stage's transactional producer at once: what each produced, per topic, in
    order (state changelogs are left out: they are not rows)."""

    def __init__(self) -> None:
        self.hooks: list[Callable[[], None]] = []
        self.queued: dict[str, list[tuple[int, bytes | None]]] = defaultdict(list)
        self.kept: dict[str, list[bytes | None]] = defaultdict(list)
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)

    def before_commit(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        if topic.endswith(".changelog"):
            return
        self.queued[topic].append((partition or 0, value))
        self.kept[topic].append(value)

    def take(self, topic: str) -> Iterator[tuple[int, int, bytes | None]]:
        """(partition, offset, value) of what was produced on `topic` since the last take."""
        while self.queued.get(topic):
            partition, value = self.queued[topic].pop(0)
            self.offsets[topic, partition] += 1
            yield partition, self.offsets[topic, partition], value

    def commit(self) -> None:
        for hook in self.hooks:
            hook()


def table(bus: Bus, stage: str, name: str, partitions: range) -> ChangelogTable:
    duck: Any = bus
    t = ChangelogTable(name, f"u.{stage}.{name}.changelog", duck, None)  # type: ignore[arg-type]
    for p in partitions:
        t.partitions[p], t.applied[p] = PartitionState(), Applied()
    return t


class Pipeline:
    """The four stages wired through the bus, each input's offsets counted per topic."""

    def __init__(self) -> None:
        self.settings = s = Settings(
            topics={"prefix": "u.", "partitions": PARTITIONS},
            friction={
                # Small enough a stream to alert on: a fixed threshold, low volume bounds.
                "detector": {
                    "thresholds": [{"kind": "friction", "scope": "web:*", "max_rate": 0.05}],
                    "min_signals": 1,
                    "min_exposures": 1,
                    "min_expected": 0.1,
                    "warmup_windows": 1,
                }
            },
            alerts={"routing_file": None},
        )
        self.topics = t = Topics.from_settings(s.topics)
        self.bus = bus = Bus()
        duck: Any = bus
        parts = range(PARTITIONS)
        self.ingest = IngestStage(s, t, duck, table(bus, "ingest", "seen", parts))
        router = Router(s.identity, {}, PARTITIONS)
        self.routing = Routing(t, PARTITIONS, duck, table(bus, "identity", "routed", parts), router)
        links = table(bus, "identity", "links", range(AUTHORITY, AUTHORITY + 1))
        self.resolving = Resolving(s, t, duck, links, router.partition)
        self.journeys = JourneyStage(
            s,
            t,
            duck,
            table(bus, "journeys", "persons", parts),
            table(bus, "journeys", "merges", parts),
            table(bus, "journeys", "handoff", parts),
            load_definitions(s.journeys.definitions),
        )
        self.friction = FrictionPartitions(
            s,
            t,
            duck,
            table(bus, "friction", "windows", parts),
            table(bus, "friction", "transitions", parts),
            table(bus, "friction", "dropoffs", parts),
            load_configured_mapping(s.friction),
        )
        detector = table(bus, "friction", "detector", range(DETECTOR, DETECTOR + 1))
        self.detection = FrictionDetection(s, t, duck, detector, None)

    def run(self, raw: list[tuple[int, bytes]]) -> None:
        """Feed `raw` messages (partition, payload), each passed on until no stage has
        anything left to read: time moves downstream between them, as it does live."""
        now = CLOSE + timedelta(minutes=1)
        for offset, (partition, payload) in enumerate(raw, start=1):
            self.ingest.handle(payload, partition, offset, now)
            self.settle()

    def settle(self) -> None:
        t, moved = self.topics, True
        steps: list[tuple[str, Callable[[int, int, bytes | None], None]]] = [
            (t.touchpoints, lambda p, o, v: self.routing.handle(v, p, o)),
            (t.identity_links, lambda _p, o, v: self.resolving.handle(v, o, 0)),
            (t.stitched, self._stitched),
            (t.identity_merges, lambda p, o, v: self.journeys.handle_merges(v, p, o)),
            (t.journey_handoff, lambda p, o, v: self.journeys.handle_handoff(v, p, o)),
            (t.journey_transitions, lambda p, o, v: self.friction.handle_transitions(v, p, o)),
            (t.journey_dropoffs, lambda p, o, v: self.friction.handle_dropoffs(v, p, o)),
            (t.friction_partials, lambda _p, o, v: self.detection.handle(v, o)),
        ]
        while moved:
            moved = False
            for topic, handle in steps:
                for partition, offset, value in self.bus.take(topic):
                    handle(partition, offset, value)
                    moved = True
            moved |= self.resolving.announce(PARTITIONS)
            moved |= self.journeys.announce()
            self.bus.commit()

    def _stitched(self, partition: int, offset: int, value: bytes | None) -> None:
        self.journeys.handle_stitched(value, partition, offset)
        self.friction.handle_stitched(value, partition, offset)

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every row the sink would insert, per table."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for topic, name in pipeline_routes(self.topics).items():
            for value in self.bus.kept.get(topic, []):
                if value is not None:
                    found = rows_of(value)
                    out[name] += orjson.loads(b"[" + found + b"]") if found else []
        return out


def raw_messages() -> list[tuple[int, bytes]]:
    """A simulated day with a checkout incident, as 50-event batches on two partitions (web
    and app, then the late channels), then a heartbeat on each that closes every deadline."""
    config = SimConfig(
        customers=400,
        days=DAYS,
        seed=11,
        start=START,
        incidents=(Incident.parse("web:/checkout errors x20 @300m for 600m"),),
    )
    events, _truth = Simulation(config, PiiHasher(PiiSettings())).run()
    # Store and call-center exports arrive later, in one batch after a heartbeat past the
    # support journey's 48 h: the calls in them retract drop-offs.
    timely = [orjson.dumps(e.event) for e in events if e.event["channel"] not in LATE]
    late = [orjson.dumps(e.event) for e in events if e.event["channel"] in LATE]
    before_late = int((START + timedelta(days=3, minutes=-1)).timestamp() * 1000)
    out = [(n % PARTITIONS, envelope.encode(m, None)) for n, m in enumerate(batches(timely))]
    out += [(p, envelope.encode([], before_late)) for p in range(PARTITIONS)]
    out += [(n % PARTITIONS, envelope.encode(m, None)) for n, m in enumerate(batches(late))]
    close = int(CLOSE.timestamp() * 1000)
    return out + [(p, envelope.encode([], close)) for p in range(PARTITIONS)]


def batches(fragments: list[bytes], size: int = 50) -> list[list[bytes]]:
    return [fragments[i : i + size] for i in range(0, len(fragments), size)]


@pytest.fixture(scope="module")
def emitted() -> dict[str, list[dict[str, Any]]]:
    pipeline = Pipeline()
    pipeline.run(raw_messages())
    return pipeline.rows()


# Tables whose rows no stage makes: `journeys alerts silence` writes them (checked below).
NOT_FROM_STAGES = {"alert_silences"}


@pytest.mark.parametrize(
    "name",
    sorted(
        set(pipeline_routes(Topics.from_settings(Settings().topics)).values()) - NOT_FROM_STAGES
    ),
)
def test_every_row_has_exactly_its_tables_columns(
    name: str, emitted: dict[str, list[dict[str, Any]]]
) -> None:
    rows = emitted[name]
    assert rows, f"the stream made no {name} rows: the test would check nothing"
    columns = {c.name for c in metadata.tables[name].columns}
    wanted = columns - DEFAULTED.get(name, set())
    allowed = columns | EXTRA.get(name, set())
    shapes = {frozenset(row) for row in rows}
    carried = set().union(*shapes)
    assert EXTRA.get(name, set()) <= carried, f"{name}: EXTRA lists fields no row carries"
    for shape in shapes:
        assert not wanted - shape, f"{name}: rows lack {sorted(wanted - shape)}"
        assert not shape - allowed, f"{name}: rows carry {sorted(shape - allowed)}, no column"


def test_a_silence_record_has_exactly_its_tables_columns() -> None:
    silence = Silence(
        "s-1",
        "series",
        "dropoff purchase:checkout:web *",
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 1, 2, tzinfo=UTC),
        "deploy window",
        "oncall",
    )
    assert set(silence.to_dict()) == {c.name for c in metadata.tables["alert_silences"].columns}
