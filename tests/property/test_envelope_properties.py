"""Invariants of the wire format: encode/decode round-trips and BatchBuilder's batching."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import BatchBuilder, Decoded, decode, encode
from sinks.batching import rows_of

INT64 = st.integers(-(2**63), 2**63 - 1)
WIDEST_WATERMARK = -(2**63)

text = st.text(st.characters(codec="utf-8"), max_size=12)
scalars = (
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=8,
)
events = st.dictionaries(text, json_values, max_size=6)
watermarks = st.none() | INT64


@settings(max_examples=100)
@given(st.lists(events, max_size=8), watermarks)
def test_encode_then_decode_round_trips(batch: list[dict[str, Any]], watermark: int | None) -> None:
    fragments = [orjson.dumps(e) for e in batch]
    payload = encode(fragments, watermark)
    assert decode(payload) == Decoded(batch, watermark, is_batch=True)
    # The sink's fast path sees exactly the fragments that went in.
    assert rows_of(payload) == b",".join(fragments)


@settings(max_examples=100)
@given(events)
def test_a_bare_object_decodes_to_itself(event: dict[str, Any]) -> None:
    event.pop("envelope", None)
    assert decode(orjson.dumps(event)) == Decoded([event], None, is_batch=False)


@settings(max_examples=150)
@given(
    sends=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 300)), max_size=150),
    max_events=st.integers(1, 8),
    max_bytes=st.integers(64, 2048),
)
def test_batch_builder_bounds_order_and_loses_nothing(
    sends: list[tuple[int, int]], max_events: int, max_bytes: int
) -> None:
    builder = BatchBuilder(max_events=max_events, max_bytes=max_bytes)
    sent: dict[int, list[bytes]] = defaultdict(list)
    batches: list[tuple[int, list[bytes]]] = []
    for i, (partition, pad) in enumerate(sends):
        fragment = orjson.dumps({"i": i, "pad": "x" * pad})
        sent[partition].append(fragment)
        full = builder.add(partition, fragment)
        if full is not None:
            batches.append((partition, full))
        emitted = sum(len(b) for _, b in batches)
        assert len(builder) == i + 1 - emitted
    batches.extend(builder.drain().items())
    assert len(builder) == 0

    received: dict[int, list[bytes]] = defaultdict(list)
    for partition, batch in batches:
        assert 1 <= len(batch) <= max_events
        # Over max_bytes only when a single event is itself that large.
        assert len(batch) == 1 or len(encode(batch, WIDEST_WATERMARK)) <= max_bytes
        received[partition].extend(batch)
    assert received == sent
