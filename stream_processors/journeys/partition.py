"""What the journeys stage holds for one partition besides its persons: the core, the
watermarks it moves by, the persons in transit, and how they are kept in the partition's
table (docs/stages/journeys.md).

Time comes from three places: the upstream watermarks on `stitched` (`marks`), the identity
authority's announcements on `identity-merges` (`decided_ms`), and how far every partition of
the stage has read, announced on `journey-handoff` (`reads`). No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from stream_processors.core.watermarks import SourceWatermarks
from stream_processors.journeys.core.deadlines import NEVER
from stream_processors.journeys.core.engine import JourneyCore
from stream_processors.journeys.handoffs import Handoffs
from stream_processors.runtime.state import PartitionState

SOURCES_KEY = "\x00sources"  # the upstream partitions' watermarks
MERGES_KEY = "\x00merges"  # {"decided": the authority's frontier}
READS_KEY = "\x00reads"  # how far every partition of the stage has read (`announce`)


@dataclass(slots=True)
class PartitionJourneys:
    """What the stage holds for one partition: the core, the upstream watermarks, and the
    persons in transit to or from other partitions."""

    core: JourneyCore
    marks: SourceWatermarks
    handoffs: Handoffs
    # How far each partition of this stage has read its inputs, as announced on
    # `journey-handoff`: events it forwards here later are not older than that.
    reads: SourceWatermarks
    state: PartitionState  # the table's, to notice a restore
    # Time up to which the identity authority has decided every link (its announcements on
    # `identity-merges`).
    decided_ms: int | None = None
    written: list[str] = field(default_factory=list)
    marks_changed: bool = False
    merges_changed: bool = False
    reads_changed: bool = False

    @classmethod
    def restore(
        cls, core: JourneyCore, partitions: int, state: PartitionState
    ) -> PartitionJourneys:
        """The bookkeeping in a partition's restored table data, taken out of it (what is
        left are the persons)."""
        data = state.data
        marks = SourceWatermarks.restore(partitions, data.pop(SOURCES_KEY, ()))
        merges = data.pop(MERGES_KEY, {})
        handoffs = Handoffs.restore(data)
        reads = SourceWatermarks.restore(partitions, data.pop(READS_KEY, ()))
        return cls(core, marks, handoffs, reads, state, merges.get("decided"))

    def take_bookkeeping(self) -> Iterator[tuple[str, Any]]:
        """(key, value now) for each bookkeeping key changed since the last call; None is a
        tombstone."""
        if self.marks_changed:
            yield SOURCES_KEY, self.marks.snapshot()
            self.marks_changed = False
        if self.merges_changed:
            yield MERGES_KEY, {"decided": self.decided_ms}
            self.merges_changed = False
        if self.reads_changed:
            yield READS_KEY, self.reads.snapshot()
            self.reads_changed = False
        yield from self.handoffs.take_entries()

    def forward_of(self, pid: str) -> tuple[str, str] | None:
        """Where events stamped `pid` go now when another partition has the person: (the
        person there, the person here they were for), or None: they stay. Through the merges
        made here first: a person merged into one that later left for another partition
        follows it (its events made a stray copy of the one that left)."""
        if not self.handoffs.forward:
            return None
        here = self.core.resolve(pid)
        new = self.handoffs.target(here)
        return None if new is None else (new, here)

    def time_known(self) -> int | None:
        """The partition's event time, once it has one."""
        return self.core.watermark_ms if self.core.watermark_ms > -NEVER else None

    def time_read(self) -> int | None:
        """How far this partition has read its inputs: the upstream watermark, but not past
        the links the authority has decided."""
        low, decided = self.marks.low, self.decided_ms
        return None if low is None or decided is None else min(low, decided)

    def read_ahead(self) -> int | None:
        """How far this partition's input has run ahead of its time (ms), once both are
        known: a partition that has not heard every source yet, or has no time yet, is never
        held back (its time may wait on it, and on nothing it holds)."""
        low, time = self.marks.low, self.time_known()
        return None if low is None or time is None else low - time

    def waits_on_handoffs(self) -> bool:
        """Whether merged persons on their way here are what holds this partition's time,
        rather than its inputs."""
        return self._time_bound()[1]

    def time_to(self) -> int | None:
        """Where event time may move: as far as every partition of the stage has read (any
        of them may yet forward a merged person's events here, and those must not arrive
        behind the watermark already sent), and, while a merged person is on its way, only
        to just short of its merge. (Standing still instead kept a partition's time from
        moving at all while merges came faster than the handoffs' round trip: at full speed
        every partition awaited one, and the events ahead of its time piled up.)"""
        return self._time_bound()[0]

    def _time_bound(self) -> tuple[int | None, bool]:
        """`time_to`, and whether an awaited merge rather than the reads sets it."""
        read, everyone = self.time_read(), self.reads.low
        if read is None or everyone is None:
            return None, False
        to = min(read, everyone)
        if not self.handoffs.awaiting:
            return to, False
        before = self.handoffs.awaited_before()
        if before is None:
            return None, True
        return min(to, before), before < to
