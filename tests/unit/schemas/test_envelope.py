"""schemas.envelope: decoding batches and bare events, encoding, and BatchBuilder's bounds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.envelope import BatchBuilder, Decoded, EnvelopeError, decode, encode
from sinks.batching import rows_of

WIDEST_WATERMARK = -(2**63)  # the longest watermark text an envelope can carry


def batch_doc(**fields: Any) -> bytes:
    """A batch envelope with `fields` replacing the defaults."""
    doc: dict[str, Any] = {"envelope": "journeys.batch", "v": 1, "watermark": None, "events": []}
    doc.update(fields)
    return orjson.dumps(doc)


def batch_without(key: str) -> bytes:
    doc: dict[str, Any] = {"envelope": "journeys.batch", "v": 1, "watermark": 5, "events": []}
    del doc[key]
    return orjson.dumps(doc)


def fragment(i: int, pad: int = 0) -> bytes:
    return orjson.dumps({"i": i, "pad": "x" * pad})


# -- decode -------------------------------------------------------------------------------


@pytest.mark.parametrize("watermark", [None, 0, -5, 1_700_000_000_123, 2**63 - 1])
def test_decode_batch_returns_events_in_order_and_the_watermark(watermark: int | None) -> None:
    events = [{"a": 1}, {"b": [2, 3]}, {"a": 1}]
    got = decode(batch_doc(watermark=watermark, events=events))
    assert got == Decoded(events, watermark, is_batch=True)


def test_decode_batch_without_watermark_key_has_no_watermark() -> None:
    assert decode(batch_without("watermark")) == Decoded([], None, is_batch=True)


@pytest.mark.parametrize(
    "doc",
    [
        {"event_id": "e1", "channel": "web"},
        {},
        {"envelope": "some.other.batch", "v": 1, "events": [{"a": 1}]},
        {"events": [{"a": 1}], "watermark": 7},
    ],
    ids=["event", "empty-object", "foreign-envelope", "no-envelope-name"],
)
def test_decode_bare_object_is_one_event_without_watermark(doc: dict[str, Any]) -> None:
    assert decode(orjson.dumps(doc)) == Decoded([doc], None, is_batch=False)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(b"", "malformed_json", id="empty"),
        pytest.param(b'{"a": 1', "malformed_json", id="truncated"),
        pytest.param(b'{"a": 1} x', "malformed_json", id="trailing-garbage"),
        pytest.param(b'{"a": "\xff"}', "malformed_json", id="invalid-utf8"),
        pytest.param(b"[]", "not_an_object", id="array"),
        pytest.param(b'[{"a": 1}]', "not_an_object", id="array-of-objects"),
        pytest.param(b'"text"', "not_an_object", id="string"),
        pytest.param(b"42", "not_an_object", id="number"),
        pytest.param(b"null", "not_an_object", id="null"),
        pytest.param(batch_doc(v=2), "unsupported_envelope", id="version-2"),
        pytest.param(batch_doc(v=0), "unsupported_envelope", id="version-0"),
        pytest.param(batch_doc(v="1"), "unsupported_envelope", id="version-string"),
        pytest.param(batch_doc(v=None), "unsupported_envelope", id="version-null"),
        pytest.param(batch_doc(v=True), "unsupported_envelope", id="version-true"),
        pytest.param(batch_without("v"), "unsupported_envelope", id="version-missing"),
        pytest.param(batch_without("events"), "unsupported_envelope", id="events-missing"),
        pytest.param(batch_doc(events=None), "unsupported_envelope", id="events-null"),
        pytest.param(batch_doc(events={"a": 1}), "unsupported_envelope", id="events-object"),
        pytest.param(batch_doc(watermark=1.5), "unsupported_envelope", id="watermark-float"),
        pytest.param(batch_doc(watermark="17"), "unsupported_envelope", id="watermark-string"),
        pytest.param(batch_doc(watermark=[1]), "unsupported_envelope", id="watermark-list"),
        pytest.param(batch_doc(watermark=True), "unsupported_envelope", id="watermark-true"),
    ],
)
def test_decode_rejects_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode(payload)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{reason}: ")


# -- encode -------------------------------------------------------------------------------


def test_encode_writes_the_canonical_wire_format() -> None:
    # The sink slices events out of exactly this shape without decoding (sinks.batching).
    assert encode([b'{"a":1}', b'{"b":2}'], 17) == (
        b'{"envelope":"journeys.batch","v":1,"watermark":17,"events":[{"a":1},{"b":2}]}'
    )
    assert encode([], None) == b'{"envelope":"journeys.batch","v":1,"watermark":null,"events":[]}'


@pytest.mark.parametrize("watermark", [None, 0, 1_700_000_000_000, WIDEST_WATERMARK])
@pytest.mark.parametrize(
    "events",
    [[], [{"a": 1}], [{"x": 'é\n"q"'}, {"nested": {"l": [1, None, 2.5]}}, {"x": 'é\n"q"'}]],
    ids=["none", "one", "several"],
)
def test_encode_round_trips_through_decode(
    events: list[dict[str, Any]], watermark: int | None
) -> None:
    payload = encode([orjson.dumps(e) for e in events], watermark)
    assert decode(payload) == Decoded(events, watermark, is_batch=True)


# -- BatchBuilder -------------------------------------------------------------------------


def test_builder_cuts_by_count() -> None:
    builder = BatchBuilder(max_events=3, max_bytes=1 << 20)
    emitted = [builder.add(0, fragment(i)) for i in range(7)]
    assert emitted == [
        None,
        None,
        [fragment(0), fragment(1), fragment(2)],
        None,
        None,
        [fragment(3), fragment(4), fragment(5)],
        None,
    ]
    assert len(builder) == 1
    assert builder.drain() == {0: [fragment(6)]}


def test_builder_cuts_by_bytes_only_when_the_next_event_would_not_fit() -> None:
    max_bytes = 1024
    builder = BatchBuilder(max_events=10_000, max_bytes=max_bytes)
    sent = [fragment(i, pad=90) for i in range(40)]
    batches: list[list[bytes]] = []
    for i, f in enumerate(sent):
        full = builder.add(0, f)
        if full is not None:
            batches.append(full)
            assert full[-1] == sent[i - 1]
            # Cut because this event would not fit (a few bytes of accounting slack allowed).
            assert len(encode([*full, f], WIDEST_WATERMARK)) > max_bytes - 8
    batches.extend(builder.drain().values())
    assert [f for b in batches for f in b] == sent
    assert len(batches) > 2
    assert all(len(encode(b, WIDEST_WATERMARK)) <= max_bytes for b in batches)


def test_builder_sends_an_event_larger_than_max_bytes_alone() -> None:
    builder = BatchBuilder(max_events=100, max_bytes=256)
    big, small = fragment(1, pad=1000), fragment(2)
    assert builder.add(0, small) is None
    assert builder.add(0, big) == [small]
    assert builder.add(0, fragment(3)) == [big]
    assert builder.drain() == {0: [fragment(3)]}


def test_builder_keeps_partitions_apart_and_in_order() -> None:
    builder = BatchBuilder(max_events=2, max_bytes=1 << 20)
    assert builder.add(0, fragment(1)) is None
    assert builder.add(1, fragment(2)) is None
    assert builder.add(0, fragment(3)) == [fragment(1), fragment(3)]
    assert builder.add(2, fragment(4)) is None
    assert builder.add(1, fragment(5)) == [fragment(2), fragment(5)]
    assert len(builder) == 1
    assert builder.drain() == {2: [fragment(4)]}


def test_drain_takes_everything_and_leaves_the_builder_empty() -> None:
    builder = BatchBuilder(max_events=10, max_bytes=1 << 20)
    builder.add(3, fragment(1))
    builder.add(5, fragment(2))
    builder.add(3, fragment(3))
    assert len(builder) == 3
    assert builder.drain() == {3: [fragment(1), fragment(3)], 5: [fragment(2)]}
    assert len(builder) == 0
    assert builder.drain() == {}
    # A fresh buffer after a drain: counting starts again.
    builder.add(3, fragment(4))
    assert builder.drain() == {3: [fragment(4)]}


def test_drain_skips_partitions_whose_batch_was_just_emitted() -> None:
    builder = BatchBuilder(max_events=1, max_bytes=1 << 20)
    assert builder.add(0, fragment(1)) == [fragment(1)]
    assert builder.drain() == {}


def test_source_partition_round_trips_and_keeps_the_sink_shortcut() -> None:
    payload = encode([b'{"a":1}'], 42, source=3)
    assert decode(payload) == Decoded([{"a": 1}], 42, is_batch=True, source=3)
    assert rows_of(payload) == b'{"a":1}'


@pytest.mark.parametrize("source", [-1, "2", True, 1.5])
def test_a_source_that_is_not_a_partition_number_is_refused(source: object) -> None:
    doc = {"envelope": "journeys.batch", "v": 1, "watermark": 1, "source": source, "events": []}
    with pytest.raises(EnvelopeError) as err:
        decode(orjson.dumps(doc))
    assert err.value.reason == "unsupported_envelope"
