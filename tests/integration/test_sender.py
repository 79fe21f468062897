"""A stage's rows wait for the commit and leave as few envelopes as the broker allows, per
topic, partition and source, on the real broker: nothing is visible before the commit, every
row arrives once and in order, and a reader hears the watermark only after the last row."""

from __future__ import annotations

import orjson

from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.runtime.sender import MAX_ENVELOPE_BYTES, TransactionalSender
from stream_processors.runtime.topic_reader import read_to_end


def _envelopes(settings: Settings, topic: str) -> dict[int, list[envelope.Decoded]]:
    by_partition: dict[int, list[envelope.Decoded]] = {}
    for msg in read_to_end(settings.kafka, topic):
        by_partition.setdefault(msg.partition(), []).append(envelope.decode(msg.value()))
    return by_partition


def test_rows_sent_in_one_transaction_leave_as_one_envelope_per_partition_and_source(
    settings: Settings,
) -> None:
    topic = Topics.from_settings(settings.topics).stitched
    sender = TransactionalSender(settings.kafka, f"{settings.processor.worker_id}-sender")
    try:
        for n in range(50):
            row = orjson.dumps({"n": n})
            sender.produce_rows(topic, [row], 1_000 + n, 0, source=3)
            sender.produce_rows(topic, [row, row], None, 1)
        sender.produce_rows(topic, [], 2_000, 0, source=1)  # a watermark alone
        assert sender.pending
        sender.send_open_transaction()
        assert _envelopes(settings, topic) == {}  # sent, but not committed

        sender.commit()
        got = _envelopes(settings, topic)
    finally:
        sender.close()

    first, second = got[0]
    assert first.events == [{"n": n} for n in range(50)]
    assert (first.watermark_ms, first.source) == (1_049, 3)
    assert (second.events, second.watermark_ms, second.source) == ([], 2_000, 1)
    [only] = got[1]
    assert [r["n"] for r in only.events] == [n for n in range(50) for _ in (1, 2)]
    assert (only.watermark_ms, only.source) == (None, None)
    assert set(got) == {0, 1}


def test_rows_past_the_envelope_limit_leave_early_and_the_watermark_comes_last(
    settings: Settings,
) -> None:
    topic = Topics.from_settings(settings.topics).stitched
    row = orjson.dumps({"pad": "x" * 10_000})
    rows = (3 * MAX_ENVELOPE_BYTES) // len(row)
    sender = TransactionalSender(settings.kafka, f"{settings.processor.worker_id}-sender")
    try:
        for n in range(rows):
            sender.produce_rows(topic, [row], n, 2, source=0)
        sender.commit()
        got = _envelopes(settings, topic)[2]
    finally:
        sender.close()

    assert len(got) >= 3
    assert all(len(e.events) * len(row) <= MAX_ENVELOPE_BYTES for e in got)
    assert sum(len(e.events) for e in got) == rows
    assert [e.watermark_ms for e in got] == [None] * (len(got) - 1) + [rows - 1]
    assert {e.source for e in got} == {0}
