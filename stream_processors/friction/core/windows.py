"""Tumbling event-time windows of named counters per series key, closed by the watermark.

Every key shares the same aligned boundaries (`start = t - t % size`), so windows are held
per start, then per key. A window closes when the watermark (docs/concepts.md §5: the newest event
time seen minus the pipeline's lateness) passes its end, and is emitted as version 1. A
closed window stays for `allowed_lateness` more: a late event updates it and the next
`advance()` emits it again as version n+1, with the counts of the version before, so a
reader can replace what it took from the old one. After that the window is dropped, and
events for it are counted in `late_dropped` and refused. Memory is bounded by the keys times
the windows between the oldest kept start and the newest event.

Late channels: the keys `late_keys` picks (series counted only from channels that export
late, a call center's daily file) are kept for `late_lateness` instead, so their rows are
counted, and their windows re-emitted, whenever they land within it; the other keys of the
same start are dropped at the allowed lateness as before, so only those series cost memory
for longer.

Pure: time is whatever the caller says it is; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

WindowKey = tuple[str, str]  # (series kind, scope), e.g. ("friction", "web:/checkout")


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """One emitted version of one window."""

    key: WindowKey
    start_ms: int
    end_ms: int
    version: int
    counts: Mapping[str, int]
    # The counts of the version this one replaces; None on the on-time first close, {} when
    # the first events of an already closed window arrived late.
    previous: Mapping[str, int] | None
    backfill: bool  # every event in it was published as backfill: learn from it, never alert


@dataclass(frozen=True, slots=True)
class Advance:
    """What one watermark advance produced."""

    windows: tuple[WindowCounts, ...]  # ordered by (start, key)
    closed: range  # window starts closed on time by this advance, the empty ones included
    watermark_ms: int


def one_start_at_a_time(advance: Advance) -> list[Advance]:
    """`advance` as one advance per closed start, in order, so that what reads it decides
    window by window (an alert fires in one window and resolves in a later one even when a
    backlog closes both at once). Re-emitted windows go with the first."""
    closed = advance.closed
    if len(closed) <= 1:
        return [advance]
    first: list[WindowCounts] = []
    by_start: dict[int, list[WindowCounts]] = {}
    for window in advance.windows:
        if window.previous is None and window.start_ms in closed:
            by_start.setdefault(window.start_ms, []).append(window)
        else:
            first.append(window)
    step, last = closed.step, closed[-1]
    return [
        Advance(
            tuple((first if start == closed.start else []) + by_start.get(start, [])),
            range(start, start + step, step),
            advance.watermark_ms if start == last else start + step,
        )
        for start in closed
    ]


class LateKeys:
    """Which keys are late channels' and how long their windows stay countable: the part of
    the lateness rules that `TumblingWindows` and `WindowMerger` share."""

    __slots__ = ("_edges", "_is_late", "_known", "below", "lateness_ms", "size_ms")

    def __init__(
        self,
        is_late: Callable[[WindowKey], bool] | None,
        lateness: timedelta | None,
        allowed_ms: int,
        size_ms: int,
    ) -> None:
        self._is_late = is_late
        self.size_ms = size_ms
        late_ms = int(lateness.total_seconds() * 1000) if lateness is not None else allowed_ms
        self.lateness_ms = max(late_ms, allowed_ms) if is_late is not None else allowed_ms
        self._known: dict[WindowKey, bool] = {}  # a verdict per key: series are few
        self.below: int | None = None  # late channels' windows starting before it are gone
        # The first starts kept by the last eviction (timely, late): what it has looked at.
        self._edges: tuple[int, int] | None = None

    def of(self, key: WindowKey) -> bool:
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = self._is_late is not None and self._is_late(key)
        return known

    def kept(self, key: WindowKey, start: int) -> bool:
        """A window past the allowed lateness still counts: a late channel's, within its own."""
        below = self.below
        return below is not None and start >= below and self.of(key)

    def move(self, end_bound: int) -> int:
        """The new bound given `end_bound` (a window ending after it is kept by the allowed
        lateness alone): late channels' windows starting before the returned start go."""
        self.below = end_bound - self.lateness_ms
        return self.below

    def forget_edges(self) -> None:
        """After a restore: the next eviction looks at every start."""
        self._edges = None

    def evict(
        self, by_start: dict[int, dict[WindowKey, Any]], drop_below: int, late_below: int
    ) -> tuple[list[int], list[int]]:
        """Drop the starts before `late_below`, and the keys but late channels' of those
        before `drop_below`; the starts dropped whole, and the starts thinned. Only the
        starts the bounds passed since the last call are looked at (the late channels' windows
        kept for days are many): starts are multiples of the size, bounds never go back."""
        size = self.size_ms
        edges = (-(-drop_below // size) * size, -(-late_below // size) * size)
        last, self._edges = self._edges, edges
        if last == edges:
            return [], []
        if last is None:
            starts = sorted(s for s in by_start if s < edges[0])
        else:
            passed = range(last[0], edges[0], size), range(last[1], edges[1], size)
            starts = sorted({s for span in passed for s in span if s in by_start})
        gone, thinned = [], []
        for start in starts:
            by_key = by_start[start]
            if start >= late_below and self._is_late is not None:
                timely = [k for k in by_key if not self.of(k)]
                if len(timely) < len(by_key):
                    for key in timely:
                        del by_key[key]
                    if timely:
                        thinned.append(start)
                    continue
            del by_start[start]
            gone.append(start)
        return gone, thinned


class _Window:
    __slots__ = ("counts", "emitted", "live", "version")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.emitted: dict[str, int] | None = None  # the counts of the last emitted version
        self.live = False  # holds at least one event that was not backfill
        self.version = 0


class TumblingWindows:
    """Counters per (key, window); see the module docstring for the life of a window."""

    def __init__(
        self,
        size: timedelta,
        allowed_lateness: timedelta,
        follow_traffic: frozenset[str] = frozenset(),
        *,
        late_keys: Callable[[WindowKey], bool] | None = None,
        late_lateness: timedelta | None = None,
    ) -> None:
        """`follow_traffic`: series kinds counted from what another stage derived (drop-offs
        at a deadline, say) rather than from events that say whether they are backfill. Such
        a window is backfill when the windows of the other kinds at its start hold traffic
        and all of it was backfill; with no traffic there, it is live (a quiet stretch is
        no reason to silence an alert). `late_keys`: the keys of late channels, kept for
        `late_lateness` (never less than the allowed lateness)."""
        self._follow = follow_traffic
        self.size_ms = int(size.total_seconds() * 1000)
        self.lateness_ms = int(allowed_lateness.total_seconds() * 1000)
        if self.size_ms <= 0 or self.lateness_ms < 0:
            raise ValueError("window size must be positive and allowed lateness not negative")
        self.late = LateKeys(late_keys, late_lateness, self.lateness_ms, self.size_ms)
        self._by_start: dict[int, dict[WindowKey, _Window]] = {}
        self._dirty: set[tuple[int, WindowKey]] = set()
        self._frontier: int | None = None  # every window starting before it has closed
        self._drop_below: int | None = None  # windows starting before it are gone
        self._watermark: int | None = None
        self.late_dropped = 0

    @property
    def watermark_ms(self) -> int | None:
        return self._watermark

    def add(
        self,
        key: WindowKey,
        at_ms: int,
        names: Iterable[str],
        *,
        backfill: bool = False,
        amount: int = 1,
    ) -> bool:
        """Count one event under each of `names` (`amount=-1` takes one back, for a
        retracted drop-off); False, and counted in `late_dropped`, when it is too late."""
        start = at_ms - at_ms % self.size_ms
        frontier = self._frontier
        if frontier is not None and start < frontier:
            drop_below = self._drop_below
            if drop_below is not None and start < drop_below and not self.late.kept(key, start):
                self.late_dropped += 1
                return False
            self._dirty.add((start, key))
        by_key = self._by_start.get(start)
        if by_key is None:
            by_key = self._by_start[start] = {}
        window = by_key.get(key)
        if window is None:
            window = by_key[key] = _Window()
        counts = window.counts
        for name in names:
            counts[name] = counts.get(name, 0) + amount
        if not backfill:
            window.live = True
        return True

    def advance(self, watermark_ms: int) -> Advance:
        """Close the windows the watermark has passed, re-emit the ones changed since they
        were emitted, and drop the ones past their allowed lateness. A watermark that goes
        back is ignored (it only re-emits changes)."""
        if self._watermark is None or watermark_ms > self._watermark:
            self._watermark = watermark_ms
        watermark = self._watermark
        # Windows starting before the last boundary at or below the watermark have ended.
        new_frontier = watermark - watermark % self.size_ms
        old_frontier = self._frontier
        if old_frontier is None:
            old_frontier = min(self._by_start, default=new_frontier)
            old_frontier = min(old_frontier, new_frontier)
        new_frontier = max(new_frontier, old_frontier)
        out = self._close(old_frontier, new_frontier)
        out += self._reemit()
        self._frontier = new_frontier
        self._evict(watermark)
        out.sort(key=lambda w: (w.start_ms, w.key))
        return Advance(tuple(out), range(old_frontier, new_frontier, self.size_ms), watermark)

    def _close(self, old: int, new: int) -> list[WindowCounts]:
        out: list[WindowCounts] = []
        if new <= old:
            return out
        by_start = self._by_start
        # Late channels' windows are kept for days: walk the starts closed, not all of them.
        if (new - old) // self.size_ms < len(by_start):
            first = -(-old // self.size_ms) * self.size_ms  # starts are multiples of it
            starts = [s for s in range(first, new, self.size_ms) if s in by_start]
        else:
            starts = sorted(s for s in by_start if old <= s < new)
        for start in starts:
            for key, window in by_start[start].items():
                out.append(self._emit(start, key, window))
        return out

    def _reemit(self) -> list[WindowCounts]:
        out = []
        for start, key in self._dirty:
            window = self._by_start[start][key]
            if window.emitted != window.counts:
                out.append(self._emit(start, key, window))
        self._dirty.clear()
        return out

    def _emit(self, start: int, key: WindowKey, window: _Window) -> WindowCounts:
        window.version += 1
        previous = window.emitted
        if previous is None and window.version > 1:
            previous = {}
        if previous is None and self._frontier is not None and start < self._frontier:
            previous = {}  # first events of a window that had closed empty
        window.emitted = dict(window.counts)
        return WindowCounts(
            key=key,
            start_ms=start,
            end_ms=start + self.size_ms,
            version=window.version,
            counts=window.emitted,
            previous=previous,
            backfill=self._traffic_backfill(start) if key[0] in self._follow else not window.live,
        )

    def _traffic_backfill(self, start: int) -> bool:
        traffic = [w for k, w in self._by_start[start].items() if k[0] not in self._follow]
        return bool(traffic) and not any(w.live for w in traffic)

    def _evict(self, watermark: int) -> tuple[list[int], list[int]]:
        """Drop what is past its lateness: the starts dropped whole, and those that lost
        every key but late channels' (to be written again)."""
        # A window is kept while end + allowed lateness is after the watermark.
        self._drop_below = watermark - self.size_ms - self.lateness_ms + 1
        late_below = self.late.move(watermark - self.size_ms + 1)
        return self.late.evict(self._by_start, self._drop_below, late_below)

    def open_windows(self) -> int:
        """How many (key, window) pairs are held: for metrics and memory tests."""
        return sum(len(by_key) for by_key in self._by_start.values())

    def late_windows(self) -> int:
        """How many of them are late channels' (for the memory they take)."""
        return sum(self.late.of(k) for by_key in self._by_start.values() for k in by_key)
