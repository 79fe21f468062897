"""Benchmarks of the pure core: no broker, one core, baselines from the same run."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from producers.synthetic import generate
from schemas import envelope
from stream_processors.ingest.core.admission import Ingest
from stream_processors.runtime.worker import GC_THRESHOLDS
from tests.unit.ingest.model_path import ModelPathIngest

from .report import Result


def envelopes(count: int, per_message: int = 500) -> list[bytes]:
    """`count` valid synthetic events as canonical batch envelopes."""
    start = datetime.now(UTC) - timedelta(days=1)
    frags = [orjson.dumps(i.event) for i in generate(count, seed=3, start=start)]
    return [envelope.encode(frags[i : i + per_message], None) for i in range(0, count, per_message)]


def _cpu_seconds(run: Callable[[], Any], repeats: int = 2) -> float:
    """The best of `repeats` runs in CPU seconds of this process: other processes sharing
    the machine's two cores then change the figure less than wall time would."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def bench_ingest_core(count: int = 200_000) -> list[Result]:
    """Decode, then the ingest core over the decoded events: the core with the row path forced
    off (one model per event, `tests/unit/ingest/model_path.py`) beside the current one, in the
    same process, under the worker's garbage-collector thresholds."""
    messages = envelopes(count)
    decode_s = _cpu_seconds(lambda: [envelope.decode(m) for m in messages])
    decoded = [envelope.decode(m).events for m in messages]
    now = datetime.now(UTC)

    def run(core: type[Ingest]) -> Callable[[], None]:
        def once() -> None:
            ingest = core({}, timedelta(days=7), timedelta(minutes=5))
            for events in decoded:
                ingest.process(events, now)

        return once

    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        reference_s = _cpu_seconds(run(ModelPathIngest))
        core_s = _cpu_seconds(run(Ingest))
    finally:
        gc.set_threshold(*thresholds)
    decode_rate, reference_rate = count / decode_s, count / reference_s
    return [
        Result("decode only (orjson, 500-event envelopes)", decode_rate, "events/s", None),
        Result("ingest core, one model per event (model path)", reference_rate, "events/s", None),
        Result(
            "ingest core: validate + dedup + encode", count / core_s, "events/s", reference_rate
        ),
    ]
