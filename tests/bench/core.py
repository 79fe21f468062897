"""Benchmarks of the pure core: no broker, one core, baselines from the same run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson

from producers.synthetic import generate
from schemas import envelope
from stream_processors.core.ingest import Ingest

from .report import Result


def envelopes(count: int, per_message: int = 500) -> list[bytes]:
    """`count` valid synthetic events as canonical batch envelopes."""
    start = datetime.now(UTC) - timedelta(days=1)
    frags = [orjson.dumps(i.event) for i in generate(count, seed=3, start=start)]
    return [envelope.encode(frags[i : i + per_message], None) for i in range(0, count, per_message)]


def bench_ingest_core(count: int = 200_000) -> list[Result]:
    messages = envelopes(count)
    started = time.perf_counter()
    decoded = [envelope.decode(m).events for m in messages]
    decode_s = time.perf_counter() - started

    core = Ingest({}, timedelta(days=7), timedelta(minutes=5))
    now = datetime.now(UTC)
    started = time.perf_counter()
    for events in decoded:
        core.process(events, now)
    core_s = time.perf_counter() - started
    decode_rate = count / decode_s
    return [
        Result("decode only (orjson, 500-event envelopes)", count / decode_s, "events/s", None),
        Result("ingest core: validate + dedup + encode", count / core_s, "events/s", decode_rate),
    ]
