"""The friction windows and repeat-contact memory of one partition, as a stage persists them.

`RecordedWindows` is `TumblingWindows` that also remembers which window starts changed since
the caller last took them, and can write one start (every key's counters, what was emitted,
its version) as plain JSON data and read it back; `RecordedRepeats` does the same for
`RepeatContacts`, per person. A stage writes the changed parts into its changelog once per
transaction and rebuilds both from it after a restart, so a restarted worker closes the same
windows with the same versions and still knows who called within the last days.

Which starts changed is noted once per event, not per counter: `recorded_series` gives
`FrictionSeries` a clock that notes the start of every event time it reads (every window
an event is counted in has that start), and the repeat memory notes the start of a later
contact that became a repeat (counted at its own time). Whoever else adds to the windows
(stage series) notes the start itself (`RecordedWindows.note`).

These extend the core classes by one level (the core keeps its per-event path free of
bookkeeping no pure caller needs); they read the parents' fields, which stay theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from stream_processors.core.friction_signals import FrictionMatcher, RepeatContacts, RepeatResult
from stream_processors.friction.core.series import Event, EventClock, FrictionSeries
from stream_processors.friction.core.windows import Advance, TumblingWindows, WindowKey, _Window

STATE_VERSION = 1


class RecordedWindows(TumblingWindows):
    """Tumbling windows whose changes can be taken, written and restored per start."""

    def __init__(
        self,
        size: timedelta,
        allowed_lateness: timedelta,
        follow_traffic: frozenset[str] = frozenset(),
        *,
        late_keys: Callable[[WindowKey], bool] | None = None,
        late_lateness: timedelta | None = None,
    ) -> None:
        super().__init__(
            size,
            allowed_lateness,
            follow_traffic,
            late_keys=late_keys,
            late_lateness=late_lateness,
        )
        self.touched: set[int] = set()  # window starts changed since `take_changes`
        self.evicted: set[int] = set()  # window starts dropped since `take_changes`

    def note(self, at_ms: int) -> None:
        """The window start of `at_ms` changed (or may have: a start that was refused as
        too late holds nothing and is written as a tombstone, which changes nothing)."""
        self.touched.add(at_ms - at_ms % self.size_ms)

    def add_capped(
        self, key: WindowKey, at_ms: int, names: Iterable[str], *, cap: int, amount: int = 1
    ) -> None:
        """`add`, except that a window holding `cap` counters takes no new ones: a name it
        holds is counted, another is left out. A window never loses a counter (one back at
        zero stays), so a name left out once is left out for good in that window, and taking
        a count back (`amount=-1`) subtracts exactly what adding it counted."""
        window = self._by_start.get(at_ms - at_ms % self.size_ms, {}).get(key)
        counts = window.counts if window is not None else {}
        room = cap - len(counts)
        kept = []
        for name in names:
            if name in counts:
                kept.append(name)
            elif amount > 0 and room > 0:
                kept.append(name)
                room -= 1
        if kept:
            self.add(key, at_ms, kept, amount=amount)

    def advance(self, watermark_ms: int) -> Advance:
        advance = super().advance(watermark_ms)
        self.touched.update(w.start_ms for w in advance.windows)
        return advance

    def _evict(self, watermark: int) -> tuple[list[int], list[int]]:
        gone, thinned = super()._evict(watermark)
        self.evicted.update(gone)
        self.touched.update(thinned)  # lost its timely keys: written again with the rest
        return gone, thinned

    def take_changes(self) -> tuple[set[int], set[int]]:
        """The starts changed and the starts dropped since the last call. A late channel's
        row may bring back a start dropped in the same transaction: what is held decides."""
        changed = self.touched | self.evicted
        self.touched, self.evicted = set(), set()
        gone = {start for start in changed if start not in self._by_start}
        return changed - gone, gone

    @property
    def frontier_ms(self) -> int | None:
        """Every window starting before it has closed."""
        return self._frontier

    # -- JSON form ----------------------------------------------------------------------------

    def snapshot_meta(self) -> list[Any]:
        dirty = sorted([start, list(key)] for start, key in self._dirty)
        return [
            STATE_VERSION,
            self._frontier,
            self._drop_below,
            self._watermark,
            self.late_dropped,
            dirty,
        ]

    def snapshot_start(self, start: int) -> list[list[Any]] | None:
        """Every key's window at `start` (None when none is held)."""
        by_key = self._by_start.get(start)
        if by_key is None:
            return None
        return [
            [kind, scope, w.counts, w.emitted, w.version, w.live]
            for (kind, scope), w in by_key.items()
        ]

    def restore(self, meta: list[Any] | None, starts: dict[int, list[list[Any]]]) -> None:
        """Load what `snapshot_meta` and `snapshot_start` wrote (replacing everything)."""
        self._by_start.clear()
        self._dirty.clear()
        self.late.forget_edges()
        if meta is not None:
            version, frontier, drop_below, watermark, late, dirty = meta
            if version != STATE_VERSION:
                raise ValueError(f"friction window state of an unknown version: {version!r}")
            self._frontier, self._drop_below, self._watermark = frontier, drop_below, watermark
            if watermark is not None:  # not written: it follows from the watermark
                self.late.move(int(watermark) - self.size_ms + 1)
            self.late_dropped = int(late)
            self._dirty.update((int(s), (str(k[0]), str(k[1]))) for s, k in dirty)
        for start in sorted(starts):
            by_key = self._by_start[start] = {}
            for kind, scope, counts, emitted, version, live in starts[start]:
                window = _Window()
                window.counts = {str(n): int(c) for n, c in counts.items()}
                window.emitted = (
                    None if emitted is None else {str(n): int(c) for n, c in emitted.items()}
                )
                window.version = int(version)
                window.live = bool(live)
                by_key[(str(kind), str(scope))] = window
        self.touched.clear()
        self.evicted.clear()


class RecordedRepeats(RepeatContacts):
    """Repeat-contact memory that knows which persons changed since the caller last asked."""

    def __init__(self, within_ms: int, windows: RecordedWindows | None = None) -> None:
        super().__init__(within_ms)
        self.touched: set[str] = set()
        self.windows = windows  # notified of the later contacts that become repeats

    def observe(self, person: str, at_ms: int, tag: str = "") -> RepeatResult:
        self.touched.add(person)
        result = super().observe(person, at_ms, tag)
        if result.now_repeat is not None and self.windows is not None:
            self.windows.note(result.now_repeat[0])
        return result

    def expire(self, before_ms: int) -> int:
        for person, times in self._times.items():
            if times and times[0] < before_ms:
                self.touched.add(person)
        return super().expire(before_ms)

    def take_changes(self) -> set[str]:
        touched, self.touched = self.touched, set()
        return touched

    def snapshot_person(self, person: str) -> list[Any] | None:
        """A person's contacts as `[times, tags]`; None once forgotten."""
        times = self._times.get(person)
        if not times:
            return None
        return [list(times), list(self._tags[person])]

    def restore_person(self, person: str, data: list[Any]) -> None:
        times, tags = data
        pairs = sorted(zip((int(t) for t in times), (str(t) for t in tags), strict=True))
        self._times[person] = [t for t, _ in pairs]
        self._tags[person] = [tag for _, tag in pairs]
        self.touched.discard(person)

    def persons(self) -> list[str]:
        """The persons whose contacts are remembered."""
        return list(self._times)

    def forget(self, person: str) -> None:
        """Drop a person's contacts (an erased person): written as a tombstone next time."""
        if self._times.pop(person, None) is not None:
            self._tags.pop(person, None)
            self.touched.add(person)

    def contacts(self, person: str) -> list[int]:
        """The contact times remembered for a person (for tests and inspection)."""
        return list(self._times.get(person, ()))


class _NotingClock(EventClock):
    """The series' clock, noting each event's window start in the windows it counts into.
    Shares its cache of parsed seconds with the other partitions' clocks."""

    def __init__(self, windows: RecordedWindows, seconds: dict[str, int]) -> None:
        super().__init__()
        self._seconds = seconds
        self._windows = windows
        self._size = windows.size_ms

    def ms(self, event: Event) -> int:
        at = EventClock.ms(self, event)
        self._windows.touched.add(at - at % self._size)
        return at


def recorded_series(
    matcher: FrictionMatcher,
    windows: RecordedWindows,
    repeats: RecordedRepeats | None = None,
    *,
    max_touchpoints: int = 5_000,
    seconds: dict[str, int] | None = None,
) -> FrictionSeries:
    """`FrictionSeries` over recorded windows, noting what each event changes; `seconds`
    shares the clock's parsing cache between partitions."""
    series = FrictionSeries(matcher, windows, repeats, max_touchpoints=max_touchpoints)
    series.clock = _NotingClock(windows, seconds if seconds is not None else {})
    if repeats is not None:
        repeats.windows = windows
    return series
