"""Invariants of the ingest stage: what is accepted does not depend on order or repetition."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processors.ingest.core.admission import Ingest, IngestResult
from tests.unit.builders import NOW, event_id, touchpoint

KINDS = ("valid", "valid_upper_id", "invalid", "future", "not_an_object")
specs = st.lists(st.tuples(st.integers(0, 7), st.sampled_from(KINDS)), max_size=30)


def raw_event(n: int, kind: str, copy: int) -> Any:
    """One raw payload for id `n`; valid kinds carry a distinct `copy` property."""
    if kind == "valid":
        return touchpoint(n, properties={"copy": copy})
    if kind == "valid_upper_id":
        return touchpoint(n, event_id=event_id(n).upper(), properties={"copy": copy})
    if kind == "invalid":
        return touchpoint(n, channel="fax")
    if kind == "future":
        return touchpoint(n, occurred_at="2025-03-02T00:00:00+00:00")
    return [event_id(n)]


def fresh_ingest() -> Ingest:
    return Ingest({}, horizon=timedelta(days=7), future_tolerance=timedelta(minutes=5))


def accepted_ids(result: IngestResult) -> list[str]:
    return [str(e.event_id) for e in result.accepted]


@settings(max_examples=100, deadline=None)
@given(specs=specs, data=st.data())
def test_accepted_ids_are_the_distinct_valid_ids_in_any_order(
    specs: list[tuple[int, str]], data: st.DataObject
) -> None:
    raws = [raw_event(n, kind, copy) for copy, (n, kind) in enumerate(specs)]
    valid = [n for n, kind in specs if kind.startswith("valid")]
    expected = {event_id(n) for n in valid}
    for order in (raws, data.draw(st.permutations(raws), label="shuffled")):
        result = fresh_ingest().process(order, NOW)
        ids = accepted_ids(result)
        assert len(ids) == len(set(ids))
        assert set(ids) == expected
        assert result.duplicates == len(valid) - len(expected)
        assert len(result.rejected) == len(specs) - len(valid)
        assert len(result.fragments) == len(ids)


@settings(max_examples=100, deadline=None)
@given(specs=specs)
def test_feeding_the_same_events_twice_accepts_nothing_the_second_time(
    specs: list[tuple[int, str]],
) -> None:
    raws = [raw_event(n, kind, copy) for copy, (n, kind) in enumerate(specs)]
    ingest = fresh_ingest()
    first = ingest.process(raws, NOW)
    second = ingest.process(raws, NOW + timedelta(minutes=1))
    assert second.accepted == [] and second.fragments == []
    assert second.max_occurred_ms is None
    assert second.duplicates == first.duplicates + len(first.accepted)
    assert [r.reason for r in second.rejected] == [r.reason for r in first.rejected]
