"""Every stage dead-letters what it cannot read in its input, without Kafka: a poison event in
the middle of a batch goes to the stage's `dlq.<stage>` topic with the event as it arrived and
the fields named, the events around it are processed as if it were not there, and a message
in an envelope version the stage does not know is kept whole with its reason; the input
offset is applied either way, so a restart does not meet it again."""

from __future__ import annotations

from typing import Any

import orjson

from schemas import envelope
from schemas.deadletter import DeadLetter
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.friction.detection import DETECTOR
from stream_processors.identity.core.routing import Router
from stream_processors.identity.stage import Routing
from stream_processors.runtime.state import Applied, ChangelogTable, PartitionState
from tests.unit.friction import test_stage as friction
from tests.unit.journeys import test_stage as journeys
from tests.unit.senders import RowsAtOnce

WRONG_VERSION = orjson.dumps({"envelope": "journeys.batch", "v": 9, "events": []})


def dead_letters(records: list[tuple[str, bytes | None]], topic: str) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(v or b"") for t, v in records if t == topic]


def poison_between(good: list[dict[str, Any]]) -> list[Any]:
    """The good events with a poison one (a number for an event id, no time) in between."""
    poison = {**good[0], "event_id": 17, "occurred_at": None}
    return [good[0], poison, *good[1:]]


# -- identity --------------------------------------------------------------------------------


class Sender(RowsAtOnce):
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None]] = []

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, partition: Any = None
    ) -> None:
        self.records.append((topic, value))

    def before_commit(self, hook: Any) -> None:
        pass


def routing(sender: Sender) -> tuple[Routing, Topics]:
    s = Settings(topics={"prefix": "u.", "partitions": 2})
    topics = Topics.from_settings(s.topics)
    duck: Any = sender
    table = ChangelogTable("routed", "u.identity.routed.changelog", duck, s.kafka)
    for p in range(2):
        table.partitions[p], table.applied[p] = PartitionState(), Applied()
    router = Router(s.identity, {}, 2)
    return Routing(topics, 2, duck, table, router), topics


def touchpoint(n: int) -> dict[str, Any]:
    return {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "event_type": "page_view",
        "channel": "web",
        "occurred_at": "2026-12-01T10:00:00+00:00",
        "identity": {"customer_id": f"c{n}"},
    }


def test_identity_forwards_only_what_it_validated() -> None:
    sender = Sender()
    stage, topics = routing(sender)
    events = poison_between([touchpoint(1), touchpoint(2)])
    stage.handle(envelope.encode([orjson.dumps(e) for e in events], None), 1, 5)
    forwarded = [
        e["event_id"]
        for t, v in sender.records
        if t == topics.stitched
        for e in envelope.decode(v or b"").events
    ]
    assert sorted(forwarded) == [touchpoint(1)["event_id"], touchpoint(2)["event_id"]]
    [letter] = dead_letters(sender.records, topics.dlq_identity)
    assert letter.stage == "identity" and letter.reason == "invalid_field"
    assert {e.field for e in letter.errors} == {"event_id", "occurred_at"}
    assert orjson.loads(letter.raw_bytes())["event_id"] == 17
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        topics.touchpoints,
        1,
        5,
    )
    assert stage.routed.applied_offset(1) == 5


def test_identity_keeps_a_message_it_cannot_read_whole() -> None:
    sender = Sender()
    stage, topics = routing(sender)
    stage.handle(WRONG_VERSION, 0, 3)
    [letter] = dead_letters(sender.records, topics.dlq_identity)
    assert letter.reason == "unsupported_envelope"
    assert letter.raw_bytes() == WRONG_VERSION
    assert stage.routed.applied_offset(0) == 3
    assert not [t for t, _ in sender.records if t == topics.stitched]


# -- journeys --------------------------------------------------------------------------------


def test_journeys_goes_on_past_a_poison_event_and_an_unknown_envelope() -> None:
    h = journeys.Harness()
    pid = journeys.person_on(0, "p")
    good = [journeys.event(pid, 1, 0, "page_view"), journeys.event(pid, 2, 1, "add_to_cart")]
    clean = journeys.Harness()
    clean.stitched(0, good)
    h.stitched(0, poison_between(good))
    h.stage.handle_stitched(WRONG_VERSION, 0, 99)
    h.stage.handle_merges(WRONG_VERSION, 1, 98)
    h.merges(0, [{"kind": "merge", "person_id": pid, "old_person_ids": "not a list"}])
    letters = [
        (t, DeadLetter.model_validate_json(v))
        for (t, _p), values in h.sender.sent.items()
        if t == h.topics.dlq_journeys
        for v in values
    ]
    reasons = sorted((d.source_topic, d.reason) for _t, d in letters)
    assert reasons == sorted(
        [
            (h.topics.stitched, "invalid_field"),
            (h.topics.stitched, "unsupported_envelope"),
            (h.topics.identity_merges, "unsupported_envelope"),
            (h.topics.identity_merges, "invalid_field"),
        ]
    )
    # The journeys are those of the clean input: the poison event changed nothing.
    strip = {"version", "updated_at"}

    def shape(j: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in j.items() if k not in strip}

    assert [shape(j) for j in h.journeys().values()] == [
        shape(j) for j in clean.journeys().values()
    ]
    assert h.stage.persons.applied_offset(0) == 99


# -- friction --------------------------------------------------------------------------------


def test_friction_dead_letters_unreadable_events_and_rows() -> None:
    sender, s = friction.RecordingSender(), friction.settings()
    parts, topics = friction.stage(sender, s), Topics.from_settings(s.topics)
    at = friction.T0 + 1000
    good = orjson.loads(friction.touch(at, "p1", error="http_500"))
    events = [orjson.dumps(e) for e in poison_between([good])]
    parts.handle_stitched(friction.stitched(events, None, 0), 0, 1)
    parts.handle_stitched(WRONG_VERSION, 0, 2)
    bad_drop = orjson.loads(friction.drop_row("d1", at))
    bad_drop["stage"] = ["checkout"]
    parts.handle_dropoffs(envelope.encode([orjson.dumps(bad_drop)], None), 0, 1)
    transition = {**orjson.loads(friction.transition_row("t1", at)), "person_id": "p2"}
    parts.handle_transitions(envelope.encode([orjson.dumps(transition), b'"junk"'], None), 1, 1)
    letters = [
        DeadLetter.model_validate_json(v or b"") for v, _k, _p in sender.on(topics.dlq_friction)
    ]
    assert sorted((d.source_topic, d.reason) for d in letters) == sorted(
        [
            (topics.stitched, "invalid_field"),
            (topics.stitched, "unsupported_envelope"),
            (topics.journey_dropoffs, "invalid_field"),
            (topics.journey_transitions, "invalid_field"),
        ]
    )
    assert parts.windows.applied_offset(0) == 2
    # The good transition was counted; the bad drop-off was not.
    assert "tt1" in parts.part(1).counted and "dd1" not in parts.part(0).counted


def test_the_reason_never_repeats_text_the_message_carried() -> None:
    sender = Sender()
    stage, topics = routing(sender)
    odd = orjson.dumps({"envelope": "journeys.batch", "v": "jane@example.com", "events": []})
    stage.handle(odd, 0, 4)
    [letter] = dead_letters(sender.records, topics.dlq_identity)
    assert letter.reason == "unsupported_envelope"
    assert "jane" not in letter.detail and "str" in letter.detail
    assert letter.raw_bytes() == odd  # the payload itself is kept whole, apart


def test_the_friction_detector_dead_letters_what_is_no_partial_and_applies_the_rest() -> None:
    sender, s = friction.RecordingSender(), friction.settings()
    detector, topics = friction.detection(sender, s), Topics.from_settings(s.topics)
    no_row = envelope.encode([b'{"w": ["friction"], "s": "soon"}'], friction.T0, 0)
    no_source = envelope.encode([], friction.T0)
    good = friction.partial_message(0, friction.T0, {"exposures": 10}, friction.T0)
    for offset, payload in enumerate([WRONG_VERSION, no_row, no_source, good], start=1):
        detector.handle(payload, offset)
    letters = [
        DeadLetter.model_validate_json(v or b"") for v, _k, _p in sender.on(topics.dlq_friction)
    ]
    assert [(d.reason, d.source_offset) for d in letters] == [
        ("unsupported_envelope", 1),
        ("invalid_field", 2),
        ("unsupported_envelope", 3),
    ]
    assert letters[1].raw_bytes() == no_row
    assert detector.table.applied_offset(DETECTOR) == 4
    assert detector.decision().merged  # the good message was applied
