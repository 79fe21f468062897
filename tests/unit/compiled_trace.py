"""`python -m tests.unit.compiled_trace SEED`: one traffic through the journey core, every
record and state it produced printed as JSON lines, and last whether the core ran compiled.

test_compiled_core.py runs it with and without the compiled build and compares the lines:
the simulator's multi-channel traffic with an incident, call-center and store events
arriving hours late (refolds and retractions), identity merges and snapshot round trips.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from schemas.definitions import load_definitions
from stream_processors.compiled import is_compiled
from stream_processors.core.journeys import JourneyCore, event_ms

from .test_journeys_core import HOUR, LATE, MIN, SHIPPED, late_arrivals, simulate


def trace(seed: int) -> list[bytes]:
    events, truth = simulate(seed)
    arrivals = late_arrivals(events, seed)
    canonical = {i: p.person for p in truth.persons for i in p.identifiers}
    core = JourneyCore(load_definitions(SHIPPED))
    lines: list[bytes] = []

    def emit(records: list[Any]) -> None:
        lines.extend(orjson.dumps([type(r).__name__, *r]) for r in records)

    seen: dict[str, int] = {}  # identifier -> arrival index; merged into its person later
    high = 0
    for n, (_, event) in enumerate(arrivals):
        ident = next(f"{k}:{v}" for k, v in event["identity"].items())
        seen.setdefault(ident, n)
        emit(core.observe_batch([(event, ident)]))
        if event["channel"] not in LATE:
            high = max(high, event_ms(event["occurred_at"]))
            emit(core.advance_watermark(high - 2 * MIN))
        if n % 500 == 499:
            for old in [i for i, first in seen.items() if first < n - 200]:
                emit(core.move_person(old, canonical[old]))
                del seen[old]
            lines.append(orjson.dumps(sorted(core.take_dirty())))
            for pid in core.persons()[::7]:  # a snapshot survives the round trip unchanged
                snapshot = core.snapshot_person(pid)
                assert snapshot is not None
                core.restore_person(pid, orjson.loads(orjson.dumps(snapshot)))
    closes = event_ms(truth.closes_at) + 80 * HOUR
    emit(core.advance_watermark(closes, closes))
    lines.extend(orjson.dumps([pid, core.snapshot_person(pid)]) for pid in core.persons())
    lines.append(orjson.dumps(core.counters))
    return lines


if __name__ == "__main__":
    for line in trace(int(sys.argv[1])):
        sys.stdout.buffer.write(line + b"\n")
    print(f"compiled={is_compiled()}")
