"""Outputs split into envelopes the broker accepts, time moving only with the last."""

from __future__ import annotations

from schemas import envelope
from stream_processors.runtime.sender import TransactionalSender, envelopes


def test_rows_split_under_the_limit_in_order_with_the_watermark_last() -> None:
    rows = [b'{"n":%d,"pad":"%s"}' % (n, b"x" * 90) for n in range(1_000)]
    messages = envelopes(rows, watermark_ms=5_000, source=3, max_bytes=10_000)
    assert len(messages) > 5 and all(len(m) <= 10_000 + 200 for m in messages)
    decoded = [envelope.decode(m) for m in messages]
    assert [e for d in decoded for e in d.events] == [
        envelope.decode(envelope.encode(rows, None)).events[n] for n in range(1_000)
    ]
    assert [d.watermark_ms for d in decoded] == [None] * (len(messages) - 1) + [5_000]
    assert {d.source for d in decoded} == {3}


def test_no_rows_is_one_envelope_that_carries_time() -> None:
    (only,) = envelopes([], watermark_ms=7, source=None)
    assert envelope.decode(only).watermark_ms == 7 and envelope.decode(only).events == []


def test_a_row_over_the_limit_goes_alone() -> None:
    big, small = b'"' + b"y" * 50 + b'"', b"1"
    messages = envelopes([small, big, small], None, max_bytes=20)
    assert [envelope.decode(m).events for m in messages] == [[1], ["y" * 50], [1]]


class _FullOnce:
    """A producer whose queue is full for the first `full` calls."""

    def __init__(self, full: int) -> None:
        self.full, self.polls, self.sent = full, 0, []  # type: ignore[var-annotated]

    def produce(self, *args: object) -> None:
        if self.full:
            self.full -= 1
            raise BufferError
        self.sent.append(args)

    def poll(self, _timeout: float) -> int:
        self.polls += 1
        return 0


def test_a_full_queue_waits_and_loses_nothing() -> None:
    sender = TransactionalSender.__new__(TransactionalSender)
    sender._producer, sender._dirty, sender.messages = _FullOnce(3), False, 0  # type: ignore[assignment]
    sender.produce("t", b"v1", b"k1", 2)
    sender.produce("t", b"v2")
    producer = sender._producer
    assert producer.sent == [("t", b"v1", b"k1", 2), ("t", b"v2", None)]  # type: ignore[attr-defined]
    assert producer.polls == 3 and sender.messages == 2  # type: ignore[attr-defined]
