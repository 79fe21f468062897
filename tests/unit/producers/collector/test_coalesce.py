"""Events of several requests share per-partition batches that know whose events they hold."""

from __future__ import annotations

from producers.collector.coalesce import Coalescer
from schemas import envelope


def test_events_of_several_owners_share_a_partitions_batch() -> None:
    c: Coalescer[str] = Coalescer(max_events=10, max_bytes=10_000)
    assert c.add(0, b'{"n":1}', "a") is None
    assert c.add(0, b'{"n":2}', "b") is None
    assert c.add(1, b'{"n":3}', "a") is None
    batches = {b.partition: b for b in c.drain()}
    assert batches[0].fragments == [b'{"n":1}', b'{"n":2}']
    assert dict(batches[0].owners) == {"a": 1, "b": 1}
    assert dict(batches[1].owners) == {"a": 1}
    assert c.drain() == [] and len(c) == 0


def test_a_batch_is_complete_at_its_event_count() -> None:
    c: Coalescer[str] = Coalescer(max_events=2, max_bytes=10_000)
    assert c.add(0, b"1", "a") is None
    full = c.add(0, b"2", "a")
    assert full is not None and full.fragments == [b"1", b"2"]
    assert len(c) == 0


def test_an_event_that_would_not_fit_closes_the_batch_before_it() -> None:
    c: Coalescer[str] = Coalescer(max_events=100, max_bytes=10)
    assert c.add(0, b"12345", "a") is None
    full = c.add(0, b"67890", "b")
    assert full is not None and full.fragments == [b"12345"]
    assert dict(full.owners) == {"a": 1}
    assert [b.fragments for b in c.drain()] == [[b"67890"]]


def test_batches_encode_as_journeys_envelopes_in_order() -> None:
    c: Coalescer[str] = Coalescer(max_events=10, max_bytes=10_000)
    for n in range(3):
        c.add(2, f'{{"n":{n}}}'.encode(), "a")
    (batch,) = c.drain()
    assert envelope.decode(batch.encode()).events == [{"n": 0}, {"n": 1}, {"n": 2}]
