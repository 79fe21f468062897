"""A stage's event-time watermark from the watermarks of its upstream partitions.

A re-keying stage (identity) mixes every `touchpoints` partition into every `stitched`
partition, and says in each envelope whose watermark it carries (`source`). A reader's
watermark is the minimum over all sources (domain.md §4): until every source has spoken,
time does not move, because a silent source may still hold older events.
"""

from __future__ import annotations

from collections.abc import Iterable


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
