"""Deadlines: which items (journey tracks, sessions, persons with buffered events) are due
when the watermark moves, found in time proportional to the number due, not the number open.

A timing wheel with lazy deletion: items are filed in buckets of `resolution_ms` of event
time, and a heap orders only the non-empty buckets. Moving an item's deadline later files
nothing (its old entry wakes it early and the caller files it again); moving it earlier files
one more entry. So a sweep pops the buckets that are due (`O(log buckets)` each) and visits
their entries; stale entries are bounded by the number of times deadlines moved earlier.
The caller decides what an entry means: it checks the item's own `due_ms` on every wake.

Most buckets hold a single item (ten seconds of a partition's deadlines are few): such a bucket
holds the item itself, and a list only from its second. A list per bucket was about a twentieth
of the journeys stage's memory.
"""

from __future__ import annotations

import heapq
from typing import Final, Generic, TypeVar

# "No deadline": later than any event time in milliseconds (2**62 - 1).
NEVER: Final = 4_611_686_018_427_387_903


class Timed:
    """An item the wheel can hold: `wake_ms` is the earliest entry filed for it (NEVER if
    none is known), which the wheel keeps up to date. A base class with the slot, so every
    item has it without a dict."""

    __slots__ = ("wake_ms",)

    def __init__(self) -> None:
        self.wake_ms = NEVER


W = TypeVar("W", bound=Timed)


class DeadlineWheel(Generic[W]):
    """Items by deadline, in buckets; see the module docstring."""

    __slots__ = ("_buckets", "_heap", "_resolution", "entries")

    def __init__(self, resolution_ms: int = 1_000) -> None:
        if resolution_ms < 1:
            raise ValueError("resolution_ms must be at least 1")
        self._resolution = resolution_ms
        self._buckets: dict[int, W | list[W]] = {}  # an item, or a list of two or more
        self._heap: list[int] = []
        self.entries = 0

    def schedule(self, item: W, due_ms: int) -> None:
        """Make sure `item` wakes no later than `due_ms` (a no-op if it already will)."""
        if due_ms >= item.wake_ms or due_ms >= NEVER:
            return
        item.wake_ms = due_ms
        bucket = due_ms // self._resolution
        found = self._buckets.get(bucket)
        if found is None:
            self._buckets[bucket] = item
            heapq.heappush(self._heap, bucket)
        elif isinstance(found, list):  # items are never lists (W is a Timed)
            found.append(item)
        else:
            self._buckets[bucket] = [found, item]
        self.entries += 1

    def pop_due(self, now_ms: int) -> list[W]:
        """The items filed in buckets that start at or before `now_ms`. Entries of the
        current bucket may not be due yet: the caller checks each item and files it again."""
        last = now_ms // self._resolution
        heap, buckets = self._heap, self._buckets
        out: list[W] = []
        while heap and heap[0] <= last:
            found = buckets.pop(heapq.heappop(heap))
            if isinstance(found, list):
                out.extend(found)
            else:
                out.append(found)
        self.entries -= len(out)
        for item in out:
            # Its earliest entry was just popped. Later stale entries may remain, which only
            # costs a wasted wake (and a duplicate in some later `pop_due`).
            item.wake_ms = NEVER
        return out

    def __len__(self) -> int:
        return self.entries
