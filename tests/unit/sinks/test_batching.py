"""sinks.batching: batches cut by size, age and a planned end; rows taken from messages."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from schemas.envelope import EnvelopeError, encode
from sinks.batching import Batch, Intent, PartitionBatcher, parse_intent, rows_of

ROW = b'{"id":0}'  # 8 bytes: a message adds len(rows) + 1 = 9 to a batch's size


def feed(batcher: PartitionBatcher, offsets: range, now: float = 0.0) -> list[Batch]:
    done: list[Batch] = []
    for offset in offsets:
        done.extend(batcher.add(offset, ROW, now))
    return done


def spans(batches: list[Batch]) -> list[tuple[int, int]]:
    return [(b.first, b.last) for b in batches]


# -- size and age -------------------------------------------------------------------------


def test_size_cut_closes_the_batch_that_reaches_max_bytes() -> None:
    batcher = PartitionBatcher(partition=2, max_bytes=27, max_seconds=60)
    assert batcher.add(10, ROW, 0.0) == []
    assert batcher.add(11, ROW, 0.0) == []
    (batch,) = batcher.add(12, ROW, 0.0)  # 3 * 9 = 27 bytes
    assert (batch.partition, batch.first, batch.last, batch.parts) == (2, 10, 12, [ROW] * 3)
    assert batch.size == 27
    assert spans(feed(batcher, range(13, 19))) == [(13, 15), (16, 18)]


def test_one_large_message_is_a_batch_of_its_own() -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=100, max_seconds=60)
    big = b"[" + b",".join([ROW] * 20) + b"]"
    (batch,) = batcher.add(5, big, 0.0)
    assert (batch.first, batch.last, batch.parts) == (5, 5, [big])


def test_offsets_may_have_gaps() -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=18, max_seconds=60)
    assert batcher.add(3, ROW, 0.0) == []
    (batch,) = batcher.add(9, ROW, 0.0)  # offsets 4..8 were transaction markers
    assert (batch.first, batch.last) == (3, 9)


@pytest.mark.parametrize(("now", "due"), [(100.0, False), (100.999, False), (101.0, True)])
def test_age_cut_via_due(now: float, due: bool) -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=1 << 20, max_seconds=1.0)
    batcher.add(0, ROW, 100.0)
    batcher.add(1, ROW, 100.5)  # the age counts from the first message
    batch = batcher.due(now)
    if not due:
        assert batch is None
        return
    assert batch is not None and (batch.first, batch.last, batch.opened_at) == (0, 1, 100.0)
    assert batcher.due(now + 100) is None  # nothing open any more
    assert batcher.add(2, ROW, 200.0) == []
    after = batcher.due(201.0)
    assert after is not None and (after.first, after.last, after.opened_at) == (2, 2, 200.0)


def test_due_without_an_open_batch_is_none() -> None:
    assert PartitionBatcher(partition=0, max_bytes=100, max_seconds=0.1).due(1e9) is None


# -- planned end --------------------------------------------------------------------------


@pytest.mark.parametrize("max_bytes", [18, 1 << 20], ids=["bytes-would-cut-earlier", "later"])
def test_planned_end_cuts_exactly_at_the_planned_offset(max_bytes: int) -> None:
    batcher = PartitionBatcher(partition=1, max_bytes=max_bytes, max_seconds=1.0)
    batcher.planned_end = 105
    assert feed(batcher, range(100, 105)) == []
    (batch,) = batcher.add(105, ROW, 0.0)
    assert (batch.first, batch.last, len(batch.parts)) == (100, 105, 6)
    assert batcher.planned_end is None
    # After the planned batch, the size bound applies again.
    after = feed(batcher, range(106, 120))
    if max_bytes == 18:
        assert spans(after) == [
            (106, 107),
            (108, 109),
            (110, 111),
            (112, 113),
            (114, 115),
            (116, 117),
            (118, 119),
        ]
    else:
        assert after == []


def test_due_is_none_while_a_planned_end_is_pending() -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=1 << 20, max_seconds=1.0)
    batcher.planned_end = 50
    feed(batcher, range(40, 45), now=0.0)
    assert batcher.due(1e6) is None
    (batch,) = feed(batcher, range(45, 51), now=2e6)
    assert (batch.first, batch.last) == (40, 50)


def test_a_caught_up_partition_writes_its_batch_at_once_but_never_cuts_a_planned_one() -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=1 << 20, max_seconds=1.0)
    feed(batcher, range(3), now=0.0)
    assert batcher.open and batcher.due(0.1) is None  # young, more may come
    batch = batcher.due(0.1, caught_up=True)
    assert batch is not None and (batch.first, batch.last) == (0, 2)
    assert not batcher.open and batcher.due(0.2, caught_up=True) is None

    # A replay rebuilds the recorded batch to its end, however soon the reader catches up.
    batcher.planned_end = 9
    feed(batcher, range(3, 6), now=1.0)
    assert batcher.due(1.1, caught_up=True) is None
    (replayed,) = feed(batcher, range(6, 10), now=1.2)
    assert (replayed.first, replayed.last) == (3, 9)


def test_a_planned_end_never_seen_cuts_before_the_first_offset_past_it() -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=1 << 20, max_seconds=1.0)
    batcher.planned_end = 12
    assert batcher.add(10, ROW, 0.0) == []
    # 11 and 12 are gone: the batch cannot be rebuilt, so it ends at 10 and 13 starts anew.
    (cut,) = batcher.add(13, ROW, 0.0)
    assert (cut.first, cut.last) == (10, 10)
    assert batcher.planned_end is None
    batch = batcher.due(5.0)
    assert batch is not None and (batch.first, batch.last) == (13, 13)


def test_missing_planned_end_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=1 << 20, max_seconds=1.0)
    batcher.planned_end = 12
    batcher.add(10, ROW, 0.0)
    with caplog.at_level(logging.WARNING, logger="sinks.batching"):
        batcher.add(20, ROW, 0.0)
    assert "planned batch end 12 not seen" in caplog.text


# -- intents and tokens ------------------------------------------------------------------

TOPIC_ID = "cfvJhsrESS29MwSYlhtGxw"


@pytest.mark.parametrize(
    ("metadata", "intent"),
    [
        ("journeys-sink:v1:end=1234", Intent(1234)),
        ("journeys-sink:v1:end=0", Intent(0)),
        (f"journeys-sink:v2:{TOPIC_ID}:end=77", Intent(77, TOPIC_ID)),
        (None, None),
        ("", None),
        ("journeys-sink:v1:end=", None),
        ("journeys-sink:v1:end=12x", None),
        ("journeys-sink:v1:end=-3", None),
        ("journeys-sink:v2:end=5", None),
        ("journeys-sink:v2::end=5", None),
        (f"journeys-sink:v2:{TOPIC_ID}:end=", None),
        ("journeys-sink:v3:x:end=5", None),
        ("some other tool's metadata", None),
    ],
)
def test_parse_intent(metadata: str | None, intent: Intent | None) -> None:
    assert parse_intent(metadata) == intent


@pytest.mark.parametrize("topic_id", [TOPIC_ID, None], ids=["v2", "v1"])
def test_intent_round_trips(topic_id: str | None) -> None:
    batch = Batch(partition=3, first=10, last=99, topic_id=topic_id)
    assert parse_intent(batch.intent()) == Intent(99, topic_id)


def test_token_names_topic_id_partition_and_offset_range() -> None:
    batch = Batch(partition=3, first=10, last=99, topic_id=TOPIC_ID)
    assert batch.token("journeys.touchpoints") == f"journeys.touchpoints/{TOPIC_ID}/3/10-99"


def test_a_batch_planned_by_a_v1_sink_keeps_its_v1_token() -> None:
    assert Batch(partition=3, first=10, last=99).token("journeys.touchpoints") == (
        "journeys.touchpoints/3/10-99"
    )


def test_a_recreated_topic_never_reuses_a_token() -> None:
    old = Batch(partition=0, first=0, last=9, topic_id="old-id").token("t")
    new = Batch(partition=0, first=0, last=9, topic_id="new-id").token("t")
    assert old != new


def test_a_v1_intent_is_rebuilt_with_the_v1_token_and_then_v2_goes_on() -> None:
    batcher = PartitionBatcher(partition=1, max_bytes=1 << 20, max_seconds=1.0, topic_id=TOPIC_ID)
    batcher.plan(Intent(12))
    (planned,) = feed(batcher, range(10, 13))
    assert (planned.first, planned.last, planned.topic_id) == (10, 12, None)
    assert planned.token("t") == "t/1/10-12"
    assert planned.intent() == "journeys-sink:v1:end=12"  # a crash now rebuilds it the same
    feed(batcher, range(13, 15))
    after = batcher.due(5.0)
    assert after is not None and after.token("t") == f"t/{TOPIC_ID}/1/13-14"
    assert after.intent() == f"journeys-sink:v2:{TOPIC_ID}:end=14"


def test_a_v2_intent_of_this_topic_is_rebuilt_with_its_token() -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=18, max_seconds=1.0, topic_id=TOPIC_ID)
    batcher.plan(Intent(14, TOPIC_ID))
    (planned,) = feed(batcher, range(10, 15))  # bytes alone would cut after two messages
    assert (planned.first, planned.last, planned.topic_id) == (10, 14, TOPIC_ID)
    assert planned.offsets == [10, 11, 12, 13, 14]


def test_an_intent_of_an_older_topic_with_the_same_name_plans_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=18, max_seconds=1.0, topic_id=TOPIC_ID)
    with caplog.at_level(logging.WARNING, logger="sinks.batching"):
        batcher.plan(Intent(14, "the-old-topic-id"))
    assert batcher.planned_end is None
    assert "belongs to topic id the-old-topic-id" in caplog.text
    assert spans(feed(batcher, range(0, 4))) == [(0, 1), (2, 3)]


def test_a_planned_batch_cut_early_gets_the_new_name() -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=1 << 20, max_seconds=1.0, topic_id=TOPIC_ID)
    batcher.plan(Intent(12))
    batcher.add(10, ROW, 0.0)
    (cut,) = batcher.add(13, ROW, 0.0)  # 11 and 12 are gone: not the recorded batch
    assert cut.token("t") == f"t/{TOPIC_ID}/0/10-10"


# -- rows ---------------------------------------------------------------------------------


def test_rows_of_a_canonical_envelope_is_a_byte_slice() -> None:
    fragments = [b'{"b":1,"a":2}', b'{"x":  "kept as written"}']
    payload = encode(fragments, 1_740_830_400_000)
    rows = rows_of(payload)
    # Byte for byte (key order and spacing kept), which a decode/encode would not do.
    assert rows == b'{"b":1,"a":2},{"x":  "kept as written"}'
    assert payload.find(rows) != -1


@pytest.mark.parametrize("watermark", [None, -1])
def test_rows_of_an_empty_canonical_envelope_is_empty(watermark: int | None) -> None:
    assert rows_of(encode([], watermark)) == b""


@pytest.mark.parametrize(
    ("payload", "events"),
    [
        pytest.param(b'{ "event_id" : "e1", "n": 1 }', [{"event_id": "e1", "n": 1}], id="bare"),
        pytest.param(
            b'{"v":1,"envelope":"journeys.batch","watermark":null,"events":[{"a":1},{"b":2}]}',
            [{"a": 1}, {"b": 2}],
            id="keys-reordered",
        ),
        pytest.param(
            b'{"envelope": "journeys.batch", "v": 1, "watermark": 5, "events": [{"a": 1}]}',
            [{"a": 1}],
            id="spaced",
        ),
    ],
)
def test_rows_of_other_messages_are_decoded_and_re_encoded(
    payload: bytes, events: list[dict[str, Any]]
) -> None:
    assert rows_of(payload) == b",".join(orjson.dumps(e) for e in events)


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]"])
def test_rows_of_a_bad_message_raises_envelope_error(payload: bytes) -> None:
    with pytest.raises(EnvelopeError):
        rows_of(payload)


def test_body_is_a_json_array_of_every_event() -> None:
    batcher = PartitionBatcher(partition=0, max_bytes=1 << 20, max_seconds=1.0)
    messages = [
        encode([b'{"i":1}', b'{"i":2}'], 7),
        encode([], None),  # an empty batch contributes no row and no stray comma
        b'{"i":3}',
        encode([b'{"i":4}'], 8),
    ]
    for offset, payload in enumerate(messages):
        batcher.add(offset, rows_of(payload), 0.0)
    batch = batcher.due(10.0)
    assert batch is not None
    assert orjson.loads(batch.body()) == [{"i": 1}, {"i": 2}, {"i": 3}, {"i": 4}]


def test_body_of_an_empty_batch_is_an_empty_array() -> None:
    assert Batch(partition=0, first=0, last=0, parts=[b""]).body() == b"[]"
