"""Benchmark of the journey core: no broker, one core, decode rate from the same run.

Warm-up: about 1,020,000 customers each start a purchase journey (half of them go on to
consider, a fifth to the cart) between 24.5 and 2 hours before the timed hour, so about a
million journeys are open when it starts, and about 4% reach their time limit during it.

Timed: 200,000 events of one hour as ingest and identity would forward them, in sessions:
web and app sessions of 2-8 events (page views, product views, cart, checkout, orders, help
pages; 3% carry friction), calls (queued, answered, ended; half resolved) and store
purchases, 30% of which arrive 1-6 hours late. The watermark moves once per 500-event
envelope (newest timely event time minus 5 s).

It runs as the journeys stage runs it: with the worker's GC thresholds, and each envelope decoded
just before the core takes it. Only time spent in the core counts (generating the warm-up's
events and decoding do not). Memory per
open journey is measured apart, with tracemalloc, on 100,000 customers built the same way
(everything the core holds: persons, tracks, journeys, hits, the deadline wheels).
"""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from schemas import envelope
from schemas.definitions import load_definitions
from schemas.settings import Settings
from stream_processors.journeys.core.engine import JourneyCore, event_ms
from stream_processors.runtime.worker import GC_THRESHOLDS

from .report import Result

DEFINITIONS = Path(__file__).resolve().parents[2] / "deploy" / "definitions"
START_MS = 1_740_787_200_000  # 2025-03-01T00:00:00Z: the timed hour starts here
HOUR_MS = 3_600_000
LATENESS_MS = 5_000
_WEB = (
    ("page_view", 40),
    ("product_view", 25),
    ("home_view", 5),
    ("search", 5),
    ("add_to_cart", 10),
    ("checkout_step", 7),
    ("order_completed", 3),
    ("help_view", 5),
)
_WEB_TYPES = [name for name, weight in _WEB for _ in range(weight)]


def _iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{millis:03d}000Z"


def _event(
    rng: random.Random,
    person: int,
    ms: int,
    channel: str,
    event_type: str,
    *,
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "channel": channel,
        "source": channel,
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": _iso(ms),
        "received_at": _iso(ms),
        "identity": {"customer_id": f"c-{person}"},
        "session_id": None,
        "touchpoint": f"/{event_type}",
        "properties": properties or {},
        "backfill": False,
        "person_id": f"p-{person}",
    }


def warmup(persons: int, seed: int = 3) -> Iterator[list[dict[str, Any]]]:
    """Journey-opening events of `persons` customers, in time order, in 500-event batches."""
    rng = random.Random(seed)
    events: list[tuple[int, int, str]] = []
    for person in range(persons):
        t = START_MS - rng.randrange(2 * HOUR_MS, int(24.5 * HOUR_MS))
        events.append((t, person, "home_view"))
        if rng.random() < 0.5:
            t += rng.randrange(60_000, HOUR_MS // 2)
            events.append((t, person, "product_view"))
            if rng.random() < 0.4:
                events.append((t + rng.randrange(60_000, HOUR_MS // 2), person, "add_to_cart"))
    events.sort()
    for i in range(0, len(events), 500):
        yield [_event(rng, p, t, "web", et) for t, p, et in events[i : i + 500]]


def timed(count: int, persons: int, seed: int = 5) -> list[dict[str, Any]]:
    """`count` events of the timed hour, in arrival order."""
    rng = random.Random(seed)
    out: list[tuple[int, dict[str, Any]]] = []
    while len(out) < count:
        person = rng.randrange(persons)
        t = START_MS + rng.randrange(HOUR_MS)
        kind = rng.random()
        if kind < 0.05:
            events = _call(rng, person, t)
        elif kind < 0.08:
            events = [_event(rng, person, t, "store", "pos_purchase")]
        else:
            events = _session(rng, person, t)
        late = events[0]["channel"] in ("store", "call_center") and rng.random() < 0.3
        delay = rng.randrange(HOUR_MS, 6 * HOUR_MS) if late else rng.randrange(LATENESS_MS)
        out += [(event_ms(e["occurred_at"]) + delay, e) for e in events]
    out.sort(key=lambda pair: pair[0])
    return [e for _, e in out[:count]]


def _session(rng: random.Random, person: int, t: int) -> list[dict[str, Any]]:
    channel = "web" if rng.random() < 0.7 else "app"
    events = []
    for _ in range(rng.randint(2, 8)):
        t += rng.randrange(5_000, 60_000)
        friction = {"error": "http_500"} if rng.random() < 0.03 else None
        events.append(_event(rng, person, t, channel, rng.choice(_WEB_TYPES), properties=friction))
    return events


def _call(rng: random.Random, person: int, t: int) -> list[dict[str, Any]]:
    ended = {"disposition": "resolved" if rng.random() < 0.5 else "unresolved"}
    return [
        _event(rng, person, t, "call_center", "contact_queued"),
        _event(rng, person, t + 60_000, "call_center", "contact_answered"),
        _event(rng, person, t + 360_000, "call_center", "contact_ended", properties=ended),
    ]


def _feed(core: JourneyCore, batches: Iterable[list[dict[str, Any]]]) -> tuple[int, int, float]:
    """Feed batches as a stage would (events, the envelope's watermark, the dirty persons it
    persists per transaction); return records, events and the seconds spent in the core."""
    outputs = events = 0
    seconds = 0.0
    high = core.watermark_ms + LATENESS_MS
    observe, advance, dirty = core.observe_batch, core.advance_watermark, core.take_dirty
    for batch in batches:
        for event in batch:  # the sender's watermark, which the envelope carries
            if event["channel"] in ("web", "app"):
                high = max(high, event_ms(event["occurred_at"]))
        started = time.perf_counter()
        outputs += len(observe([(event, event["person_id"]) for event in batch]))
        outputs += len(advance(high - LATENESS_MS))
        dirty()
        seconds += time.perf_counter() - started
        events += len(batch)
    return outputs, events, seconds


def _core() -> JourneyCore:
    return JourneyCore(load_definitions(sorted(DEFINITIONS.glob("*.toml"))))


def memory_per_open_journey(persons: int = 100_000) -> float:
    """Bytes the core holds per open journey (tracemalloc, after sessions have closed)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    core = _core()
    _feed(core, warmup(persons))
    core.advance_watermark(START_MS)  # close the warm-up's sessions
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / core.open_journeys()


def memory_per_open_journey_restored(persons: int = 100_000) -> float:
    """Bytes per open journey the core holds restored from the snapshots it wrote, as after a
    restart (each person from its changelog value); compare `memory_per_open_journey`."""
    core = _core()
    _feed(core, warmup(persons))
    core.advance_watermark(START_MS)
    saved = [(pid, orjson.dumps(core.snapshot_person(pid))) for pid in core.persons()]
    opened, watermark = core.open_journeys(), core.watermark_ms
    del core
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    again = _core()
    for pid, value in saved:
        again.restore_person(pid, orjson.loads(value))
    again.restore_watermark(watermark)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert again.open_journeys() == opened
    return held / opened


def bench_journey_core(count: int = 200_000, persons: int = 1_020_000) -> list[Result]:
    """Events/s through the journey core with a million open journeys, beside decoding; as
    the journeys stage runs it: the worker's GC thresholds, each envelope
    decoded just before the core takes it."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        core = _core()
        _, warm_events, warm_s = _feed(core, warmup(persons))
        opened = core.open_journeys()
        # As the journeys stage does after restoring its state: the long-lived state leaves
        # the collector's view. Otherwise each full collection walks millions of objects.
        gc.collect()
        gc.freeze()
        events = timed(count, persons)
        frags = [orjson.dumps(e) for e in events]
        del events
        messages = [envelope.encode(frags[i : i + 500], None) for i in range(0, count, 500)]
        started = time.perf_counter()
        for m in messages:
            envelope.decode(m)
        decode_rate = count / (time.perf_counter() - started)
        # Decoded one envelope at a time (untimed), as the stage hands them over: events are
        # fresh in the cache, not 200,000 decoded ahead.
        decoded = (envelope.decode(m).events for m in messages)
        outputs, _, core_s = _feed(core, decoded)
        gc.unfreeze()
    finally:
        gc.set_threshold(*thresholds)
    live_memory = memory_per_open_journey()
    return [
        Result("decode only (orjson, 500-event envelopes)", decode_rate, "events/s", None),
        Result(
            f"journey core: warm-up, {warm_events:,} events opening {opened:,} journeys",
            warm_events / warm_s,
            "events/s",
            None,
        ),
        Result(
            f"journey core: {count:,} events, {opened:,} open journeys "
            f"({outputs / count:.2f} records/event)",
            count / core_s,
            "events/s",
            decode_rate,
            ">= 150,000 events/s",
        ),
        Result("journey core: memory per open journey", live_memory, "bytes", None),
        Result(
            "journey core: memory per open journey, restored from its snapshots",
            memory_per_open_journey_restored(),
            "bytes",
            live_memory,
        ),
    ]


def bench_journeys_stage(settings: Settings, log: Path, count: int = 400_000) -> list[Result]:
    """The journeys stage in faust: `count` events of the timed hour (200,000 customers) on
    `stitched`, as the identity stage writes them (person-keyed envelopes of 500 events,
    each carrying its partition's watermark), with state in changelog tables; events/s
    between its first and last commit, beside raw consume + decode of the same topic."""
    from schemas.partitioning import partition_for
    from schemas.topics import Topics

    from .pipeline import PER_MESSAGE, _produce, producer_for, raw_consume, stage_rate

    topics = Topics.from_settings(settings.topics)
    n = settings.topics.partitions
    producer = producer_for(settings)
    # The identity authority's announcement: every link decided, so time follows `stitched`.
    for p in range(n):
        _produce(producer, topics.identity_merges, p, envelope.encode([], START_MS + 10 * HOUR_MS))
    pending: dict[int, list[bytes]] = {p: [] for p in range(n)}
    high = dict.fromkeys(range(n), START_MS - HOUR_MS)
    messages = 0
    for event in timed(count, 200_000):
        p = partition_for(event["person_id"].encode(), n)
        pending[p].append(orjson.dumps(event))
        if event["channel"] in ("web", "app"):
            high[p] = max(high[p], event_ms(event["occurred_at"]))
        if len(pending[p]) == PER_MESSAGE:
            # Each partition is its own source here, so the stage's time is their minimum.
            batch = envelope.encode(pending[p], high[p] - LATENESS_MS, p)
            _produce(producer, topics.stitched, p, batch)
            pending[p], messages = [], messages + 1
    for p, rest in pending.items():
        _produce(producer, topics.stitched, p, envelope.encode(rest, high[p] - LATENESS_MS, p))
        messages += 1
    producer.flush(120)
    raw = raw_consume(settings, topics.stitched, messages)
    stage = stage_rate(
        settings,
        "journeys",
        topics.stitched,
        log,
        "faust journeys stage: journeys, transitions, drop-offs, sessions + changelog",
    )
    stage.baseline, stage.target = raw.value, ">= 50,000 events/s"
    return [raw, stage]
