"""The ingest stage's idle advance with injected clocks: a quiet live
partition follows the wall clock; a partition replaying old data is never pushed to the
present, however long it stays quiet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.ingest.stage import IngestStage
from stream_processors.runtime.state import Applied, ChangelogTable, PartitionState
from tests.unit.builders import touchpoint
from tests.unit.senders import RowsAtOnce

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LATENESS = timedelta(minutes=2)  # the setting's default
IDLE = 60.0


class Sender(RowsAtOnce):
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, int]] = []

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, partition: Any = None
    ) -> None:
        self.records.append((topic, value, partition))

    def before_commit(self, hook: Any) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


def stage(clock: Clock) -> tuple[IngestStage, Sender, Topics]:
    settings = Settings(topics={"prefix": "u.", "partitions": 2})
    topics = Topics.from_settings(settings.topics)
    sender = Sender()
    duck: Any = sender
    seen = ChangelogTable("seen", "u.ingest.seen.changelog", duck, settings.kafka)
    for p in range(2):
        seen.partitions[p], seen.applied[p] = PartitionState(), Applied()
    return IngestStage(settings, topics, duck, seen, monotonic=clock), sender, topics


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def feed(s: IngestStage, partition: int, offset: int, occurred: datetime) -> None:
    event = touchpoint(offset, occurred_at=occurred.isoformat())
    s.handle(envelope.encode([orjson.dumps(event)], None), partition, offset, NOW)


def heartbeats(sender: Sender, topics: Topics) -> dict[int, int | None]:
    return {
        p: envelope.decode(v or b"").watermark_ms
        for t, v, p in sender.records
        if t == topics.touchpoints and not envelope.decode(v or b"").events
    }


def test_a_quiet_live_partition_follows_the_clock_and_a_replaying_one_stays() -> None:
    clock = Clock()
    s, sender, topics = stage(clock)
    feed(s, 0, 1, NOW - timedelta(seconds=10))  # live
    feed(s, 1, 1, NOW - timedelta(days=30))  # a replay of last month
    replay_mark = s.seen.applied[1].watermark_ms
    assert s.heartbeat_idle(NOW + timedelta(seconds=30), IDLE) == []  # not idle yet
    clock.seconds += IDLE
    later = NOW + timedelta(seconds=IDLE)
    assert s.heartbeat_idle(later, IDLE) == [0]
    assert heartbeats(sender, topics) == {0: ms(later - LATENESS)}
    assert s.seen.applied[1].watermark_ms == replay_mark
    # Three hours of quiet, the timer every quarter of the idle period: the live partition
    # keeps up, the replay keeps its own time.
    step = IDLE / 4
    for tick in range(1, int(3 * 3600 / step) + 1):
        clock.seconds += step
        s.heartbeat_idle(later + timedelta(seconds=tick * step), IDLE)
    end = later + timedelta(hours=3)
    assert s.seen.applied[0].watermark_ms == ms(end - LATENESS)
    assert s.seen.applied[1].watermark_ms == replay_mark


def test_input_resets_the_idle_period() -> None:
    clock = Clock()
    s, _sender, _topics = stage(clock)
    feed(s, 0, 1, NOW)
    clock.seconds += IDLE - 1
    feed(s, 0, 2, NOW)
    clock.seconds += IDLE - 1
    assert 0 not in s.heartbeat_idle(NOW + timedelta(seconds=IDLE), IDLE)
