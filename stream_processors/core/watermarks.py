"""Event-time watermarks: one partition's, from the events it saw, and a stage's, from the
watermarks of its upstream partitions.

A partition's watermark is the newest event time seen minus the allowed lateness
(docs/concepts.md): an event later than that is late. A producer may declare a watermark
(a heartbeat, when it has nothing to send), which counts if it is later, but never past the
clock-skew tolerance. It never moves back.

A re-keying stage (identity) mixes every `touchpoints` partition into every `stitched`
partition, and says in each envelope whose watermark it carries (`source`). A reader's
watermark is the minimum over all sources (docs/concepts.md §5): until every source has spoken,
time does not move, because a silent source may still hold older events.

In live mode an idle partition follows the wall clock (`idle_watermark`), but only one whose
event time is already near it: a partition replaying old data is never pushed to the present.
"""

from __future__ import annotations

from collections.abc import Iterable


def partition_watermark(
    previous_ms: int | None,
    newest_ms: int | None,
    declared_ms: int | None,
    *,
    lateness_ms: int,
    ceiling_ms: int,
) -> int | None:
    """One partition's watermark after a batch: `previous_ms` (it never moves back), the
    batch's newest event time `newest_ms` minus `lateness_ms`, and a producer's declared
    watermark capped at `ceiling_ms` (now plus the future tolerance); None until one is known.
    """
    candidates = [previous_ms]
    if newest_ms is not None:
        candidates.append(newest_ms - lateness_ms)
    if declared_ms is not None:
        candidates.append(min(declared_ms, ceiling_ms))
    known = [c for c in candidates if c is not None]
    return max(known) if known else None


def idle_watermark(
    watermark_ms: int | None, now_ms: int, *, lateness_ms: int, idle_ms: int
) -> int | None:
    """Where an idle partition's watermark moves at wall-clock time `now_ms`: to the clock
    minus the allowed lateness, so deadlines fire in quiet hours; None when it stays.

    It moves only when the partition's event time (its watermark plus the lateness) is within
    the lateness plus the idle period of the clock, so a live partition that merely went quiet
    keeps up, while one replaying last month is never pushed to the present (which would drop
    off every open journey and make the rest of the replay late). A partition that has seen no
    event at all (None) moves: nothing says it is behind, and a silent source would otherwise
    hold back every reader's time.
    """
    target = now_ms - lateness_ms
    if watermark_ms is None:
        return target
    if watermark_ms >= target:
        return None
    behind = now_ms - (watermark_ms + lateness_ms)
    return target if behind <= lateness_ms + idle_ms else None


class SourceWatermarks:
    """The latest watermark heard from each of `sources` upstream partitions."""

    __slots__ = ("_heard", "_low", "sources")

    def __init__(self, sources: int) -> None:
        if sources < 1:
            raise ValueError("a stage has at least one source")
        self.sources = sources
        self._heard: dict[int, int] = {}
        self._low: int | None = None

    def hear(self, source: int, watermark_ms: int) -> int | None:
        """Take `source`'s watermark (it never moves back); the combined one after it."""
        if not 0 <= source < self.sources:
            raise ValueError(f"source {source} outside 0..{self.sources - 1}")
        before = self._heard.get(source)
        if before is not None and watermark_ms <= before:
            return self._low
        self._heard[source] = watermark_ms
        # Recompute only when the slowest source moved (or the last one spoke first).
        if len(self._heard) == self.sources and (before is None or before == self._low):
            self._low = min(self._heard.values())
        return self._low

    @property
    def low(self) -> int | None:
        """The minimum over all sources; None until every source has been heard."""
        return self._low

    def missing(self) -> list[int]:
        """Sources not heard yet (why the watermark does not move)."""
        return [s for s in range(self.sources) if s not in self._heard]

    def snapshot(self) -> list[list[int]]:
        return [[s, w] for s, w in sorted(self._heard.items())]

    @classmethod
    def restore(cls, sources: int, data: Iterable[Iterable[int]]) -> SourceWatermarks:
        marks = cls(sources)
        for source, watermark in data:
            if 0 <= source < sources:  # a changed partition count drops what no longer exists
                marks.hear(source, watermark)
        return marks
