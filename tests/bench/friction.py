"""Benchmarks of the friction core: no broker, one core, decode rate from the same run.

The events are simulated touchpoints of every channel (`producers/simulator`: the real mix
of event types, friction properties and call-center contacts), validated and written as the
ingest stage forwards them (UTC times, every field present), in envelopes of 500 in
event-time order. The simulator's days are compressed into `span` of event time, so that a
5-minute window holds thousands of events as at a busy shop, not the few dozen of a small
simulation: the detector's cost is per window and series, the rest per event. Figures,
each the best of `repeat` passes:

- decode only: `envelope.decode` of every message (the floor any stage pays);
- signals: decode + the matcher (`FrictionMatcher.classify`) per event;
- core: decode + signals + tumbling windows (volume, touchpoint and channel scopes, repeat
  contacts) + a watermark advance and the detector per message.

`bench_false_alerts` is the other figure the issue asks for: alerts per series-day on a long
simulated run without incidents (every such alert is a false one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from producers.simulator.config import SimConfig
from schemas import envelope
from schemas.touchpoint import Touchpoint
from stream_processors.core.friction_signals import FrictionMatcher
from tests.unit.friction.builders import START, Pipeline, arrivals, ms, simulate

from .report import Result

LAG_MS = 2 * 60_000


def messages(
    customers: int = 60_000, span: timedelta = timedelta(hours=6), per_message: int = 500
) -> list[bytes]:
    """Simulated touchpoints as ingest forwards them, in batch envelopes."""
    events, _ = simulate(SimConfig(customers=customers, days=1.0, start=START, seed=11))
    first, last = events[0].occurred_at, events[-1].occurred_at
    squeeze = span / (last - first)
    fragments = []
    for sim in events:
        doc = {**sim.event, "occurred_at": START + (sim.occurred_at - first) * squeeze}
        fragments.append(Touchpoint.model_validate(doc).normalize_utc().model_dump_json().encode())
    return [
        envelope.encode(fragments[i : i + per_message], None)
        for i in range(0, len(fragments), per_message)
    ]


def _best(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_friction_core(customers: int = 60_000, repeat: int = 3) -> list[Result]:
    batches = messages(customers)
    count = sum(len(envelope.decode(m).events) for m in batches)
    matcher = FrictionMatcher(Pipeline().mapping)

    def decode() -> None:
        for message in batches:
            envelope.decode(message)

    def classify() -> None:
        for message in batches:
            for event in envelope.decode(message).events:
                matcher.classify(event)

    closed: list[int] = []

    def core() -> None:
        pipeline = Pipeline()
        series, detector = pipeline.series, pipeline.detector
        windows = 0
        for message in batches:
            for event in envelope.decode(message).events:
                series.count(event)
            if series.newest_ms is not None:
                advance = series.advance(series.newest_ms - LAG_MS)
                detector.process(advance)
                windows += len(advance.closed)
        closed.append(windows)

    decode_rate = count / _best(decode, repeat)
    classify_rate = count / _best(classify, repeat)
    core_rate = count / _best(core, repeat)
    return [
        Result("decode only (orjson, 500-event envelopes)", decode_rate, "events/s", None),
        Result("friction signals: decode + classify", classify_rate, "events/s", decode_rate),
        Result(
            f"friction core: signals + windows + detector ({count:,} events, {closed[0]} windows)",
            core_rate,
            "events/s",
            decode_rate,
        ),
    ]


def bench_false_alerts(customers: int = 40_000, days: float = 7.0, seed: int = 3) -> list[Result]:
    """Alerts per series-day over `days` of incident-free traffic, after the first 1.5 days
    (journeys take that long to reach every stage: before it, series are still ramping)."""
    config = SimConfig(customers=customers, days=days, start=START, seed=seed)
    events, truth = simulate(config)
    pipeline = Pipeline()
    alerts = pipeline.run(arrivals(events, truth, jitter=timedelta(seconds=90)), ms(config.end))
    counted_from = START + timedelta(days=1.5)
    late = [a for a in alerts if a.window_start >= counted_from and not a.retracted]
    series = pipeline.detector.series_count
    series_days = series * (config.end - counted_from) / timedelta(days=1)
    return [
        Result(
            f"false alerts: {days - 1.5:g} incident-free days x {series} series "
            f"({len(late)} alerts)",
            len(late) / series_days,
            "/series-day",
            None,
            f"{len(late) / (series_days * 288):.1e} per series-window",
        )
    ]
