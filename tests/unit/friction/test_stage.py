"""The friction stage's two halves without a broker: partitions counting into windows and
sending them on, the detector summing them into alerts, and both restarting from what they
wrote to their changelogs (a recording sender stands in for the transactional producer)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import envelope
from schemas.friction import load_friction_mapping
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.detection import DETECTOR, FrictionDetection
from stream_processors.friction.partitions import FrictionPartitions
from stream_processors.friction.rows import read_partials
from stream_processors.runtime.sender import chunked
from stream_processors.runtime.state import (
    Applied,
    ChangelogTable,
    PartitionState,
    Restored,
    _apply,
)
from tests.unit.senders import RowsAtOnce

S = 300_000
T0 = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp() * 1000)
DEFAULTS = Path(__file__).resolve().parents[3] / "deploy" / "friction" / "defaults.toml"


class RecordingSender(RowsAtOnce):
    """Stands in for TransactionalSender: keeps what would be produced; `commit` runs the
    hooks (the tables' flushes), as a transaction commit does."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, int | None]] = []
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
        self.records.append((topic, value, key, partition))

    def commit(self) -> None:
        for hook in self.hooks:
            hook()

    def on(self, topic: str) -> list[tuple[bytes | None, bytes | None, int | None]]:
        return [(v, k, p) for t, v, k, p in self.records if t == topic]


def settings(**friction: Any) -> Settings:
    return Settings(
        topics={"prefix": "u.", "partitions": 2},
        friction={
            "detector": {
                "thresholds": [{"kind": "friction", "scope": "web:/checkout", "max_rate": 0.2}]
            },
            **friction,
        },
        alerts={"routing_file": None},
    )


def table(
    sender: RecordingSender, name: str, partitions: list[int], restored: list[Any] | None = None
) -> ChangelogTable:
    """A table owning `partitions`, restored from `restored` changelog records if given."""
    t = ChangelogTable(name, f"u.friction.{name}.changelog", sender, kafka=None)  # type: ignore[arg-type]
    for p in partitions:
        target = Restored(PartitionState(), Applied())
        for topic, value, key, partition in restored or []:
            if topic == t.topic and partition == p:
                _apply(target, key, value)
        t.partitions[p], t.applied[p] = target.state, target.applied
    return t


def stage(sender: RecordingSender, s: Settings, log: list[Any] | None = None) -> FrictionPartitions:
    topics = Topics.from_settings(s.topics)
    windows, transitions, dropoffs = (
        table(sender, name, [0, 1], log) for name in ("windows", "transitions", "dropoffs")
    )
    return FrictionPartitions(
        s,
        topics,
        sender,  # type: ignore[arg-type]
        windows,
        transitions,
        dropoffs,
        load_friction_mapping(DEFAULTS),
    )


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def touch(at: int, person: str, **props: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{at}{person}",
            "channel": "web",
            "source": "web-shop",
            "event_type": "checkout_step",
            "occurred_at": iso(at),
            "touchpoint": "/checkout",
            "identity": {"customer_id": person},
            "person_id": person,
            "properties": props,
        }
    )


def stitched(rows: list[bytes], watermark: int | None, source: int) -> bytes:
    return envelope.encode(rows, watermark, source)


def journeys_time(parts: FrictionPartitions, partition: int, watermark: int, offset: int) -> None:
    empty = envelope.encode([], watermark)
    parts.handle_transitions(empty, partition, offset)
    parts.handle_dropoffs(empty, partition, offset)


def partials(sender: RecordingSender, topics: Topics) -> list[dict[str, Any]]:
    out = []
    for value, _key, _p in sender.on(topics.friction_partials):
        decoded = envelope.decode(value or b"")
        out += [
            {**row, "front": decoded.watermark_ms, "from": decoded.source} for row in decoded.events
        ]
    return out


def drop_row(dropoff_id: str, at: int, *, retracted: bool = False, version: int = 1) -> bytes:
    if retracted:
        return orjson.dumps(
            {
                "dropoff_id": dropoff_id,
                "definition_id": "purchase",
                "stage": "checkout",
                "person_id": "p1",
                "version": version,
                "retracted": True,
            }
        )
    return orjson.dumps(
        {
            "dropoff_id": dropoff_id,
            "journey_id": "j1",
            "definition_id": "purchase",
            "person_id": "p1",
            "stage": "checkout",
            "dropped_at": at / 1000,
            "last_channel": "web",
            "last_touchpoint": "/checkout",
            "version": version,
            "retracted": False,
        }
    )


def transition_row(tid: str, at: int, channel: str = "web", *, retracted: bool = False) -> bytes:
    return orjson.dumps(
        {
            "transition_id": tid,
            "person_id": "p1",
            "definition_id": "purchase",
            "from_stage": "cart",
            "to_stage": "checkout",
            "at": at / 1000,
            "channel": channel,
            "retracted": retracted,
        }
    )


def counts_of(rows: list[dict[str, Any]], scope: str) -> list[tuple[int, dict[str, int]]]:
    return [(r["s"], r["c"]) for r in rows if "w" in r and r["w"][1] == scope]


def test_windows_close_at_the_lowest_input_time_and_go_to_the_detector() -> None:
    sender, s = RecordingSender(), settings()
    parts, topics = stage(sender, s), Topics.from_settings(s.topics)
    parts.handle_stitched(stitched([touch(T0 + 1000, "p1", error="http_500")], T0 + 2 * S, 0), 0, 0)
    parts.handle_stitched(stitched([], T0 + 2 * S, 1), 0, 1)
    assert partials(sender, topics) == []  # the journeys stage has not spoken yet
    journeys_time(parts, 0, T0 + S + 10, 0)
    rows = partials(sender, topics)
    assert counts_of(rows, "web:/checkout") == [(T0, {"exposures": 1, "error": 1, "friction": 1})]
    assert {r["front"] for r in rows if "w" in r} == {T0 + S}
    (example,) = [r for r in rows if "x" in r]
    assert example["x"] == "friction|web:/checkout" and example["e"][0]["person_id"] == "p1"


def test_drop_offs_and_transitions_are_taken_back_exactly() -> None:
    sender, s = RecordingSender(), settings()
    parts, topics = stage(sender, s), Topics.from_settings(s.topics)
    for source in (0, 1):
        parts.handle_stitched(stitched([], T0 + 5 * S, source), 0, source)
    parts.handle_dropoffs(
        envelope.encode([drop_row("d1", T0 + 10), drop_row("d2", T0 + 20)], None), 0, 0
    )
    parts.handle_transitions(envelope.encode([transition_row("t1", T0 + 30)], None), 0, 0)
    # The journey re-folded: t1 reached checkout on the app, d2 was retracted.
    parts.handle_transitions(envelope.encode([transition_row("t1", T0 + 40, "app")], None), 0, 1)
    parts.handle_dropoffs(
        envelope.encode([drop_row("d2", 0, retracted=True, version=2)], None), 0, 1
    )
    journeys_time(parts, 0, T0 + S, 2)
    rows = partials(sender, topics)
    assert counts_of(rows, "purchase:checkout:web") == [(T0, {"dropped": 1, "entered": 0})]
    assert counts_of(rows, "purchase:checkout:app") == [(T0, {"entered": 1})]
    assert counts_of(rows, "purchase:cart:*") == [(T0, {"progressed": 1})]
    # A retraction after the window closed re-emits it, with what it replaces.
    parts.handle_dropoffs(
        envelope.encode([drop_row("d1", 0, retracted=True, version=2)], T0 + S + 1), 0, 3
    )
    late = counts_of(partials(sender, topics)[len(rows) :], "purchase:checkout:*")
    assert late == [(T0, {"dropped": 0, "entered": 1})]


def test_redelivered_input_changes_nothing() -> None:
    sender, s = RecordingSender(), settings()
    parts = stage(sender, s)
    message = envelope.encode([drop_row("d1", T0 + 10)], None)
    parts.handle_dropoffs(message, 0, 7)
    parts.handle_dropoffs(message, 0, 7)  # the same offset again, after a crash
    assert len(parts.part(0).counted) == 1
    assert parts.part(0).windows.open_windows() == 2  # checkout:web and checkout:*


def test_a_restarted_partition_goes_on_as_if_it_never_stopped() -> None:
    s = settings()
    topics = Topics.from_settings(s.topics)
    errors = [touch(T0 + i * 60_000, f"p{i}", error="http_500") for i in range(7)]
    first = [(stitched(errors, T0 + 4 * S, 0), 0), (stitched([], T0 + 4 * S, 1), 1)]
    more = [touch(T0 + 4 * S + i * 1000, "q") for i in range(5)]
    later = [(stitched(more, T0 + 9 * S, 0), 2), (stitched([], T0 + 9 * S, 1), 3)]

    def feed(parts: FrictionPartitions, messages: list[Any], time: int, offset: int) -> None:
        for message, at in messages:
            parts.handle_stitched(message, 0, at)
        journeys_time(parts, 0, time, offset)

    sender = RecordingSender()
    parts = stage(sender, s)
    feed(parts, first, T0 + 4 * S, 0)
    sender.commit()
    log, before = list(sender.records), len(partials(sender, topics))
    feed(parts, later, T0 + 9 * S, 1)
    ahead = partials(sender, topics)[before:]
    assert ahead

    again = RecordingSender()
    restarted = stage(again, s, log)
    feed(restarted, first, T0 + 4 * S, 0)  # delivered again after the crash: skipped
    feed(restarted, later, T0 + 9 * S, 1)
    assert partials(again, topics) == ahead


def _sent(records: list[Any]) -> RecordingSender:
    sender = RecordingSender()
    sender.records = list(records)
    return sender


# -- the detector half ----------------------------------------------------------------------


def detection(
    sender: RecordingSender, s: Settings, log: list[Any] | None = None
) -> FrictionDetection:
    t = table(sender, "detector", [DETECTOR], log)
    return FrictionDetection(s, Topics.from_settings(s.topics), sender, t, None)  # type: ignore[arg-type]


def partial_message(partition: int, start: int, counts: dict[str, int], front: int) -> bytes:
    row = orjson.dumps(
        {"w": ["friction", "web:/checkout"], "s": start, "c": counts, "p": None, "b": False}
    )
    return envelope.encode([row], front, partition)


def alerts(sender: RecordingSender, topics: Topics) -> list[AlertRecord]:
    return [AlertRecord.from_dict(orjson.loads(v or b"")) for v, _k, _p in sender.on(topics.alerts)]


def spiking(window: int) -> list[bytes]:
    start = T0 + window * S
    return [
        partial_message(0, start, {"exposures": 30, "friction": 9}, start + S),
        partial_message(1, start, {"exposures": 30, "friction": 8}, start + S),
    ]


def normal(window: int) -> list[bytes]:
    start = T0 + window * S
    return [partial_message(p, start, {"exposures": 30, "friction": 1}, start + S) for p in (0, 1)]


def test_the_detector_sums_partitions_and_alerts_once_across_a_restart() -> None:
    s = settings()
    topics = Topics.from_settings(s.topics)
    messages = spiking(0) + spiking(1) + normal(2) + normal(3) + normal(4) + normal(5)
    sender = RecordingSender()
    detect = detection(sender, s)
    for offset, message in enumerate(messages[:4]):
        detect.handle(message, offset)
    sender.commit()
    log = list(sender.records)
    for offset, message in enumerate(messages[4:], start=4):
        detect.handle(message, offset)
    records = alerts(sender, topics)
    assert [(r.status, r.notify) for r in records if r.notify] == [
        ("firing", True),
        ("resolved", True),
    ]
    assert records[0].observed == 17 and records[0].volume == 60  # both partitions, summed
    windows = [
        row
        for v, _k, _p in sender.on(topics.friction_windows)
        for row in envelope.decode(v or b"").events
    ]
    assert windows[0]["counts"] == {"exposures": 60, "friction": 17}

    again = RecordingSender()
    restarted = detection(again, s, log)
    for offset, message in enumerate(messages):  # all of it redelivered
        restarted.handle(message, offset)
    replayed = alerts(again, topics)
    assert [(r.incident_id, r.version, r.status) for r in replayed] == [
        (r.incident_id, r.version, r.status) for r in records[len(alerts(_sent(log), topics)) :]
    ]


@pytest.mark.parametrize("count", [1, 3_000])
def test_large_outputs_are_split_under_the_message_limit(count: int) -> None:
    rows = [b"x" * 300 for _ in range(count)]
    parts = chunked(rows)
    assert [r for part in parts for r in part] == rows
    assert all(sum(len(r) + 1 for r in part) <= 512 * 1024 for part in parts)


def test_partial_rows_read_back() -> None:
    message = partial_message(1, T0, {"exposures": 3}, T0 + S)
    partials_, examples = read_partials(envelope.decode(message).events)
    assert partials_[0].key == ("friction", "web:/checkout") and examples == []


def test_a_backlog_closed_at_once_fires_and_resolves_window_by_window() -> None:
    """A worker catching up closes hours of windows in one advance: the alert still has a
    firing version and a resolved one, and both name the cause seen while it fired."""
    s = settings()
    topics = Topics.from_settings(s.topics)
    rows = []
    for window in range(8):
        start = T0 + window * S
        bad = window in (1, 2)
        counts = {"exposures": 60, "friction": 16 if bad else 1, "error": 16 if bad else 1}
        rows.append(
            orjson.dumps(
                {"w": ["friction", "web:/checkout"], "s": start, "c": counts, "p": None, "b": False}
            )
        )
    front = T0 + 8 * S
    sender = RecordingSender()
    detect = detection(sender, s)
    detect.handle(envelope.encode(rows, front, 0), 0)
    detect.handle(envelope.encode([], front, 1), 1)  # the other partition had nothing
    records = [r for r in alerts(sender, topics) if r.notify]
    assert [r.status for r in records] == ["firing", "resolved"]
    assert records[0].last_window_end < records[1].resolved_at  # type: ignore[operator]
    assert all("error at web:/checkout" in (r.cause or "") for r in records), records


def test_progress_and_drop_offs_count_where_the_stage_was_reached() -> None:
    """A journey that reached checkout on the app and paid there counts its progression at
    checkout:app with its age in windows; one that reached it on the web and paid in a store
    counts at checkout:web without an age (the in-flight test follows the stage's channel);
    a drop-off reached on the web but last seen calling counts at checkout:web."""
    sender, s = RecordingSender(), settings()
    parts, topics = stage(sender, s), Topics.from_settings(s.topics)
    for source in (0, 1):
        parts.handle_stitched(stitched([], T0 + 5 * S, source), 0, source)
    paid = orjson.loads(transition_row("t2", T0 + S + 30, "app"))
    paid.update(from_stage="checkout", to_stage="purchase", from_channel="app", elapsed_ms=S + 20)
    in_store = orjson.loads(transition_row("t3", T0 + S + 40, "store"))
    in_store.update(
        from_stage="checkout", to_stage="purchase", from_channel="web", elapsed_ms=S + 30
    )
    dropped = orjson.loads(drop_row("d3", T0 + 10))
    dropped.update(stage_channel="web", last_channel="call_center")
    moved = [orjson.dumps(paid), orjson.dumps(in_store)]
    parts.handle_transitions(envelope.encode(moved, None), 0, 0)
    parts.handle_dropoffs(envelope.encode([orjson.dumps(dropped)], None), 0, 0)
    journeys_time(parts, 0, T0 + 2 * S, 2)
    rows = partials(sender, topics)
    assert counts_of(rows, "purchase:checkout:app") == [
        (T0 + S, {"progressed": 1, "progressed+1": 1})
    ]
    assert counts_of(rows, "purchase:checkout:web") == [
        (T0, {"dropped": 1}),
        (T0 + S, {"progressed": 1}),
    ]
    assert counts_of(rows, "purchase:checkout:call_center") == []
