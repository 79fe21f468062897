"""How the journey core reads time and friction, and the settings it runs with."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
# Property names whose presence (with a value that is not false-like) marks an event as
# friction; the simulator's are error, rage_click, transferred, out_of_stock (catalog.FRICTION).
DEFAULT_FRICTION = frozenset({
    "error", "rage_click", "dead_click", "retry", "transferred", "abandoned",
    "out_of_stock", "payment_declined", "no_results",
})  # fmt: skip
_FALSY = (None, False, 0, "", "false", "0", "no")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def friction_by_properties(names: Iterable[str]) -> Callable[[Mapping[str, Any]], bool]:
    """`is_friction(event)`: the event carries one of `names` among its properties, with a
    value that is not false-like (`false`, `0`, empty)."""
    wanted = frozenset(names)

    def is_friction(event: Mapping[str, Any]) -> bool:
        properties = event.get("properties")
        if not properties:
            return False
        # Events carry few properties: scan them. A loop, not any(): no generator per event.
        for name, value in properties.items():  # noqa: SIM110
            if name in wanted and value not in _FALSY:
                return True
        return False

    return is_friction


def event_ms(value: Any) -> int:
    """Event time in epoch ms from an ISO-8601 string with an offset, a datetime, or ms."""
    if type(value) is int:
        return value
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"event time {value!r} has no timezone")
    return (moment - _EPOCH) // _ONE_MS


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
