"""How the journey core reads time and friction, and the settings it runs with."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from stream_processors.journeys.core.signals import stated_signals

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
# Property names whose presence (with a value that is not false-like) marks an event as
# friction; the simulator's are error, rage_click, transferred, out_of_stock (catalog.FRICTION).
DEFAULT_FRICTION = frozenset(
    {
        "error",
        "rage_click",
        "dead_click",
        "retry",
        "transferred",
        "abandoned",
        "out_of_stock",
        "payment_declined",
        "no_results",
    }
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The ms a seconds field's digits add (ASCII only: `int` would take other digits too).
_TENS: Final = {str(d): d * 10_000 for d in range(6)}
_UNITS: Final = {str(d): d * 1_000 for d in range(10)}
_ONE_MS = timedelta(milliseconds=1)


def friction_by_properties(names: Iterable[str]) -> Callable[[Mapping[str, Any]], bool]:
    """`is_friction(event)`: the event has a friction signal by
    `journey_signals.stated_signals(names)`: one of `names` among its properties, with a
    value that is not false-like (`false`, `0`, empty), or one a version 2 event states (its
    typed channel block, its `friction` list). The journey core's default."""
    signals_of = stated_signals(names)

    def is_friction(event: Mapping[str, Any]) -> bool:
        return bool(signals_of(event))

    return is_friction


def event_ms(value: Any) -> int:
    """Event time in epoch ms from an ISO-8601 string with an offset, a datetime, or ms."""
    if type(value) is int:
        return value
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"event time {value!r} has no timezone")
    return (moment - _EPOCH) // _ONE_MS


class EventTimes:
    """`event_ms` at half its cost for the UTC times ingest writes (`...T10:15:00.123Z`,
    `...+00:00`; 0, 3 or 6 fraction digits): the epoch ms of each `YYYY-MM-DDTHH:MM:SS`
    prefix and of each tail after it (`.123000Z`) are computed once and kept, so a time is
    two lookups. Events come roughly in time order, so small caches (emptied when full) hit
    almost always. A new second of a minute seen before is arithmetic (an hour of traffic has
    3,600 seconds, and late batches hours more; parsing each cost ten hits). Any other form
    takes `event_ms` itself: both give the same result or error."""

    __slots__ = ("_limit", "_minutes", "_seconds", "_tails")

    def __init__(self, limit: int = 4_096) -> None:
        self._limit = limit
        self._minutes: dict[str, int] = {}
        self._seconds: dict[str, int] = {}
        self._tails: dict[str, int] = {}

    def ms(self, value: Any) -> int:
        if type(value) is str:
            base = self._seconds.get(value[:19])
            if base is not None:
                offset = self._tails.get(value[19:])
                if offset is not None:
                    return base + offset
        return self._miss(value)

    def _miss(self, value: Any) -> int:
        if type(value) is not str:
            return event_ms(value)
        head, tail = value[:19], value[19:]
        offset = self._tails.get(tail)
        if offset is None:
            offset = _tail_ms(tail)
            if offset is None:
                return event_ms(value)
            self._keep(self._tails, tail, offset)
        if head[4:17:3] != "--T::":  # YYYY-MM-DDTHH:MM:SS
            return event_ms(value)
        base = self._seconds.get(head)
        if base is None:
            tens, units = head[17:18], head[18:19]
            if tens not in _TENS or units not in _UNITS:
                return event_ms(value)
            minute = self._minutes.get(head[:16])
            if minute is None:
                try:
                    minute = event_ms(head[:16] + ":00+00:00")
                except ValueError:
                    return event_ms(value)
                self._keep(self._minutes, head[:16], minute)
            base = minute + _TENS[tens] + _UNITS[units]
            self._keep(self._seconds, head, base)
        return base + offset

    def _keep(self, cache: dict[str, int], key: str, ms: int) -> None:
        if len(cache) >= self._limit:
            cache.clear()
        cache[key] = ms


def _tail_ms(tail: str) -> int | None:
    """The ms a well-formed UTC tail (`Z`, `+00:00`, `.123Z`, `.123456+00:00`) adds."""
    if tail[-1:] == "Z":
        fraction = tail[:-1]
    elif tail[-6:] == "+00:00":
        fraction = tail[:-6]
    else:
        return None
    if not fraction:
        return 0
    digits = fraction[1:]
    if fraction[0] != "." or len(digits) not in (3, 6) or not digits.isascii():
        return None
    return int(digits[:3]) if digits.isdigit() else None


@dataclass(frozen=True)
class JourneySettings:
    """How the core treats time and what counts as friction or a completed task."""

    session_gap_ms: int = 30 * MINUTE_MS
    late_channels: frozenset[str] = frozenset({"store", "call_center"})
    # How far behind the watermark an event may still change journeys; ended journeys are
    # kept (and can be corrected) this long after they ended, which is what memory pays for.
    late_tolerance_ms: int = 72 * HOUR_MS
    friction_properties: frozenset[str] = DEFAULT_FRICTION
    # Event types that complete a UX task; default: events that reach a success stage.
    task_event_types: frozenset[str] | None = None
    # Bucket widths of the deadline wheels. Coarse buckets cost one rescan of the current
    # bucket per sweep, fine ones a list per bucket: 10 s keeps both small for time limits
    # and session gaps; buffered events wait on a 1 s wheel (they are due within seconds).
    wheel_resolution_ms: int = 10_000
    release_resolution_ms: int = 1_000
    alias_ttl_ms: int | None = None  # default: late_tolerance_ms
    # Open sessions that changed are reported when event time crosses a multiple of this: at
    # most one row per open session per interval, however many events it takes.
    session_report_ms: int = 5 * MINUTE_MS
