"""The friction stage's messages: partial windows between its two halves, global windows for
ClickHouse, and the example journeys partitions pick (docs/stages/friction.md).

`friction-partials` (one partition) carries, per message, one partition's window versions
and examples in a batch envelope whose `source` is the partition and whose `watermark` is
its frontier (every window starting before it has closed there):

    {"w": ["friction", "web:/checkout"], "s": <start ms>, "c": {...}, "p": {...}|null,
     "b": false}
    {"x": "friction|web:/checkout", "s": <start ms>, "e": [<example>, ...]}

`friction-windows` rows are the global windows, times in epoch seconds (as `journey_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_processors.friction.alerts.core.records import Example
from stream_processors.friction.core.window_merge import Partial
from stream_processors.friction.core.windows import WindowCounts
from stream_processors.runtime.state import PartitionState


def window_row(window: WindowCounts) -> bytes:
    return orjson.dumps(
        {
            "w": window.key,
            "s": window.start_ms,
            "c": window.counts,
            "p": window.previous,
            "b": window.backfill,
        }
    )


def examples_row(scope: str, start_ms: int, examples: Iterable[Example]) -> bytes:
    return orjson.dumps({"x": scope, "s": start_ms, "e": [e.to_dict() for e in examples]})


def read_partials(
    rows: Iterable[dict[str, Any]],
) -> tuple[list[Partial], list[tuple[int, str, list[Example]]]]:
    """Partials and (start, scope, examples) of one `friction-partials` message."""
    partials, examples = [], []
    for row in rows:
        if "w" in row:
            kind, scope = row["w"]
            partials.append(
                Partial((str(kind), str(scope)), int(row["s"]), row["c"], row["p"], bool(row["b"]))
            )
        elif "x" in row:
            found = [Example.from_dict(e) for e in row["e"]]
            examples.append((int(row["s"]), str(row["x"]), found))
    return partials, examples


def global_window_row(window: WindowCounts) -> bytes:
    kind, scope = window.key
    return orjson.dumps(
        {
            "series_kind": kind,
            "scope": scope,
            "window_start": window.start_ms / 1000,
            "window_end": window.end_ms / 1000,
            "version": window.version,
            "counts": window.counts,
            "backfill": window.backfill,
        }
    )


@dataclass
class StateWriter:
    """Puts changed keys into a table's partition state for the transaction about to
    commit. What it put last time was sent then: it is dropped from memory first (the live
    state is in the stage's objects, the table only carries what changed)."""

    state: PartitionState
    written: list[str] = field(default_factory=list)

    def begin(self) -> None:
        for key in self.written:
            self.state.data.pop(key, None)
        self.written = []

    def put(self, key: str, value: Any) -> None:
        """`value` None writes a tombstone."""
        if value is not None:
            self.state.data[key] = value
            self.written.append(key)
        self.state.dirty.add(key)
