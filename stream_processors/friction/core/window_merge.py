"""Global friction windows from the partial windows of every partition.

Series are global, inputs are partitioned: each partition of the friction stage counts its
own events into `TumblingWindows` and sends what they emit (first versions on close, later
versions when late events change a closed window, each with the counts of the version it
replaces) together with its *frontier*: every window starting before it has closed there.
`WindowMerger` sums those partials per window and key, and closes a window once every
partition's frontier has passed it. What it returns has the shape `TumblingWindows.advance`
gives (`Advance`: first versions of the newly closed starts with `previous=None`, later
versions with the global counts they replace), so the detector cannot tell it from a single
partition's windows:

- a partial that changes a window not yet closed globally just adds to its sums;
- one that changes a closed window (a partition's late update: a window is closed globally
  only once every partition closed it) re-emits the global window as version n+1;
- windows are kept `allowed_lateness` past the global frontier, like the partitions keep
  theirs, and dropped after; partials for them are counted in `late_dropped`. Late
  channels' keys (`late_keys`) are kept for `late_lateness`, as the partitions keep them.

Backfill: a global window is backfill when every partial of it was.

Pure, and persisted by the stage per window start (`snapshot_start`, `restore`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from stream_processors.friction.core.windows import Advance, LateKeys, WindowCounts, WindowKey

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Partial:
    """One partition's version of one window: its counts, and the counts of its version
    before (None for its first)."""

    key: WindowKey
    start_ms: int
    counts: Mapping[str, int]
    previous: Mapping[str, int] | None
    backfill: bool

    @classmethod
    def of(cls, window: WindowCounts) -> Partial:
        return cls(window.key, window.start_ms, window.counts, window.previous, window.backfill)


class _Global:
    __slots__ = ("counts", "emitted", "live", "version")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.emitted: dict[str, int] | None = None
        self.live = False
        self.version = 0


class WindowMerger:
    """Sums partial windows of `partitions` partitions; see the module docstring."""

    def __init__(
        self,
        partitions: int,
        size: timedelta,
        allowed_lateness: timedelta,
        *,
        late_keys: Callable[[WindowKey], bool] | None = None,
        late_lateness: timedelta | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError("at least one partition")
        self.partitions = partitions
        self.size_ms = int(size.total_seconds() * 1000)
        self.lateness_ms = int(allowed_lateness.total_seconds() * 1000)
        self.late = LateKeys(late_keys, late_lateness, self.lateness_ms, self.size_ms)
        self._windows: dict[int, dict[WindowKey, _Global]] = {}
        self._fronts: dict[int, int] = {}
        self._frontier: int | None = None
        self._drop_below: int | None = None
        self._dirty: set[tuple[int, WindowKey]] = set()
        self.late_dropped = 0
        self.touched: set[int] = set()
        self.evicted: set[int] = set()

    @property
    def frontier_ms(self) -> int | None:
        """Every window starting before it has closed on every partition."""
        return self._frontier

    def fronts(self) -> dict[int, int]:
        return dict(self._fronts)

    def apply(self, partition: int, partials: Iterable[Partial], front_ms: int | None) -> Advance:
        """Take one partition's partials and its frontier; return what closed globally."""
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} outside 0..{self.partitions - 1}")
        for partial in partials:
            self._add(partial)
        if front_ms is not None and front_ms > self._fronts.get(partition, front_ms - 1):
            self._fronts[partition] = front_ms
        return self._advance()

    def _add(self, partial: Partial) -> None:
        start = partial.start_ms
        drop_below = self._drop_below
        if drop_below is not None and start < drop_below and not self.late.kept(partial.key, start):
            self.late_dropped += 1
            return
        by_key = self._windows.setdefault(start, {})
        window = by_key.get(partial.key)
        if window is None:
            window = by_key[partial.key] = _Global()
        counts, before = window.counts, partial.previous or {}
        for name in partial.counts.keys() | before.keys():
            delta = partial.counts.get(name, 0) - before.get(name, 0)
            if delta:
                counts[name] = counts.get(name, 0) + delta
        if not partial.backfill:
            window.live = True
        if self._frontier is not None and start < self._frontier:
            self._dirty.add((start, partial.key))
        self.touched.add(start)

    def _advance(self) -> Advance:
        old = self._frontier
        new = min(self._fronts.values()) if len(self._fronts) == self.partitions else None
        if new is None or (old is not None and new <= old):
            out = self._reemit()
            closed = range(old or 0, old or 0, self.size_ms)
            return Advance(tuple(sorted(out, key=_order)), closed, old or 0)
        if old is None:
            old = min(min(self._windows, default=new), new)
        out = []
        # Late channels' windows are kept for days: walk the starts closed, not all of them.
        if (new - old) // self.size_ms < len(self._windows):
            first = -(-old // self.size_ms) * self.size_ms  # starts are multiples of it
            starts = [s for s in range(first, new, self.size_ms) if s in self._windows]
        else:
            starts = sorted(s for s in self._windows if old <= s < new)
        for start in starts:
            for key, window in self._windows[start].items():
                out.append(self._emit(start, key, window, first=True))
            self.touched.add(start)
        self._frontier = new
        out += self._reemit()
        self._evict(new)
        return Advance(tuple(sorted(out, key=_order)), range(old, new, self.size_ms), new)

    def _reemit(self) -> list[WindowCounts]:
        out = []
        for start, key in sorted(self._dirty):
            window = self._windows.get(start, {}).get(key)
            if window is not None and window.emitted != window.counts:
                out.append(self._emit(start, key, window, first=False))
        self._dirty.clear()
        return out

    def _emit(self, start: int, key: WindowKey, window: _Global, *, first: bool) -> WindowCounts:
        window.version += 1
        previous = None if first and window.emitted is None else (window.emitted or {})
        window.emitted = dict(window.counts)
        self.touched.add(start)
        return WindowCounts(
            key=key,
            start_ms=start,
            end_ms=start + self.size_ms,
            version=window.version,
            counts=window.emitted,
            previous=previous,
            backfill=not window.live,
        )

    def _evict(self, frontier: int) -> None:
        self._drop_below = frontier - self.size_ms - self.lateness_ms
        late_below = self.late.move(frontier - self.size_ms)
        gone, thinned = self.late.evict(self._windows, self._drop_below, late_below)
        self.evicted.update(gone)
        self.touched.update(thinned)

    def open_windows(self) -> int:
        """How many (key, window) pairs are held."""
        return sum(len(by_key) for by_key in self._windows.values())

    def late_windows(self) -> int:
        """How many of them are late channels'."""
        return sum(self.late.of(k) for by_key in self._windows.values() for k in by_key)

    # -- persistence --------------------------------------------------------------------------

    def take_changes(self) -> tuple[set[int], set[int]]:
        """The starts changed and the starts dropped (a late channel's partial may bring
        back a start dropped since: what is held decides)."""
        changed = self.touched | self.evicted
        self.touched, self.evicted = set(), set()
        gone = {start for start in changed if start not in self._windows}
        return changed - gone, gone

    def snapshot_meta(self) -> list[Any]:
        fronts = sorted([p, f] for p, f in self._fronts.items())
        dirty = sorted([s, list(k)] for s, k in self._dirty)
        return [STATE_VERSION, fronts, self._frontier, self._drop_below, self.late_dropped, dirty]

    def snapshot_start(self, start: int) -> list[list[Any]] | None:
        by_key = self._windows.get(start)
        if by_key is None:
            return None
        return [[k, s, w.counts, w.emitted, w.version, w.live] for (k, s), w in by_key.items()]

    def restore(self, meta: list[Any] | None, starts: dict[int, list[list[Any]]]) -> None:
        self._windows.clear()
        self._fronts.clear()
        self._dirty.clear()
        self.late.forget_edges()
        if meta is not None:
            version, fronts, frontier, drop_below, late, dirty = meta
            if version != STATE_VERSION:
                raise ValueError(f"merged window state of an unknown version: {version!r}")
            self._fronts = {int(p): int(f) for p, f in fronts if 0 <= int(p) < self.partitions}
            self._frontier, self._drop_below, self.late_dropped = frontier, drop_below, int(late)
            if frontier is not None:  # not written: it follows from the frontier
                self.late.move(int(frontier) - self.size_ms)
            self._dirty = {(int(s), (str(k[0]), str(k[1]))) for s, k in dirty}
        for start, rows in starts.items():
            by_key = self._windows[int(start)] = {}
            for kind, scope, counts, emitted, version, live in rows:
                window = _Global()
                window.counts = {str(n): int(c) for n, c in counts.items()}
                window.emitted = _counts(emitted)
                window.version, window.live = int(version), bool(live)
                by_key[(str(kind), str(scope))] = window
        self.touched.clear()
        self.evicted.clear()


def _counts(data: Mapping[str, Any] | None) -> dict[str, int] | None:
    return None if data is None else {str(n): int(c) for n, c in data.items()}


def _order(window: WindowCounts) -> tuple[int, WindowKey]:
    return window.start_ms, window.key
