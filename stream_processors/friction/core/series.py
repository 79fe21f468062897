"""Which series one event counts in, as counters of tumbling windows.

- `("friction", "<channel>:<touchpoint>")` and `("friction", "<channel>:*")`: `exposures`,
  one counter per signal and `friction` (all friction signals; positive moments excluded).
  The channel-wide scope also catches signals of events without a touchpoint (a crash
  reported by a mobile SDK has no screen).
- `("volume", "<channel>:<source>")`: `events`, every event, so a silent source is noticed.
- `("stage", "<journey>:<stage>:<channel>")` and `("stage", "<journey>:<stage>:*")`:
  `entered`, `progressed` (left the stage for a later one) and `dropped`, counted by
  `count_stage` from what the journeys stage reports; and per friction signal a dropped
  journey had met, `saw:<label>` (`saw:payment_declined@web:/checkout`), counted by
  `count_seen`, at most `MAX_STAGE_COUNTERS` counters per window. A progression also counts
  `progressed+<k>` (`count_progress`): it left the stage `k` windows after the window its
  entry was counted in, for `k < PROGRESS_LAGS`. Entries and progressions are counted at the
  stage's `stage_channel` (where the stage was reached), drop-offs too, so a stage's entry
  cohort and what became of it share one series.

Pure: the windows and the repeat-contact memory are handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas.friction import POSITIVE_SIGNALS, Signal
from schemas.touchpoint import IDENTIFIER_FIELDS
from stream_processors.core.friction_signals import FrictionMatcher, RepeatContacts, event_signals
from stream_processors.friction.core.windows import Advance, TumblingWindows, WindowKey

FRICTION = "friction"
VOLUME = "volume"
STAGE = "stage"
EXPOSURES = "exposures"
ANY_FRICTION = "friction"  # the counter of all friction signals at a scope
EVENTS = "events"
ENTERED, PROGRESSED, DROPPED = "entered", "progressed", "dropped"
ALL_CHANNELS = "*"
LAG = "progressed+"  # prefix of the progression-by-age counters: `progressed+0`, ...
# Progressions are counted by age for this many windows after entry (an hour of 5-minute
# windows): the in-flight test looks at cohorts younger than that.
PROGRESS_LAGS = 12
LAG_NAMES = tuple(f"{LAG}{k}" for k in range(PROGRESS_LAGS))
SAW = "saw:"  # prefix of the stage counters of signals dropped journeys met
# A stage window's counters: entered, progressed, dropped and the `saw:` labels, which a
# busy stage with many touchpoints could multiply; past the cap, new labels are left out
# (the shares of the ones kept stay exact).
MAX_STAGE_COUNTERS = 40

Event = Mapping[str, Any]


def event_time_ms(event: Event) -> int:
    """`occurred_at` (an ISO-8601 string as on the wire, or a datetime) in epoch ms."""
    occurred = event["occurred_at"]
    when = occurred if isinstance(occurred, datetime) else datetime.fromisoformat(occurred)
    return int(when.timestamp() * 1000)


class EventClock:
    """`event_time_ms` for the UTC times ingest writes (`...T10:15:00.123Z`), twice as
    fast: an aware datetime's `timestamp()` costs ~0.8 us, so the epoch second of each
    `YYYY-MM-DDTHH:MM:SS` prefix is computed once and kept (a bounded cache). Other forms
    take the slow path."""

    def __init__(self, max_cached: int = 100_000) -> None:
        self.max_cached = max_cached
        self._seconds: dict[str, int] = {}

    def ms(self, event: Event) -> int:
        occurred = event["occurred_at"]
        if not isinstance(occurred, str) or len(occurred) < 20 or occurred[10] != "T":
            return event_time_ms(event)
        if occurred[-1] == "Z":
            end = -1
        elif occurred.endswith("+00:00"):
            end = -6
        else:
            return event_time_ms(event)
        head = occurred[:19]
        seconds = self._seconds.get(head)
        if seconds is None:
            if len(self._seconds) >= self.max_cached:
                self._seconds.clear()
            seconds = int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
            self._seconds[head] = seconds
        if occurred[19] != ".":
            return seconds * 1000
        fraction = occurred[20:end]
        return seconds * 1000 + int(fraction[:3].ljust(3, "0"))


def default_person(event: Event) -> str | None:
    """The person of an event: `person_id` once stitched, else its most stable identifier."""
    person = event.get("person_id")
    if person:
        return str(person)
    identity = event.get("identity") or {}
    for name in IDENTIFIER_FIELDS:
        value = identity.get(name)
        if value:
            return f"{name}:{value}"
    return None


class FrictionSeries:
    """Counts touchpoints into the friction and volume windows.

    Touchpoints are whatever producers name them (a page path can carry a product id), so
    at most `max_touchpoints` distinct ones get series of their own; events at the others
    count channel-wide only, and `overflow` says how many did. Name touchpoints by template
    (`/product/:id`) upstream to stay under it.
    """

    def __init__(
        self,
        matcher: FrictionMatcher,
        windows: TumblingWindows,
        repeats: RepeatContacts | None = None,
        person_of: Callable[[Event], str | None] = default_person,
        max_touchpoints: int = 5_000,
    ) -> None:
        self.matcher = matcher
        self.windows = windows
        self.repeats = repeats
        self.person_of = person_of
        self.max_touchpoints = max_touchpoints
        self.clock = EventClock()
        self.newest_ms: int | None = None  # the newest event time counted: for the watermark
        self.overflow = 0
        self._scopes: set[str] = set()
        self._names: dict[tuple[bool, tuple[Signal, ...]], tuple[str, ...]] = {}
        self._expired_hour: int | None = None

    def count(self, event: Event) -> tuple[Signal, ...]:
        """Count one event; returns its signals (for the touchpoint record downstream)."""
        channel = event["channel"]
        at_ms = self.clock.ms(event)
        if self.newest_ms is None or at_ms > self.newest_ms:
            self.newest_ms = at_ms
        backfill = bool(event.get("backfill"))
        windows = self.windows
        windows.add((VOLUME, f"{channel}:{event['source']}"), at_ms, (EVENTS,), backfill=backfill)
        plan = self.matcher.plan(channel, event["event_type"])
        # Mapped properties, a v2 event's typed channel block and its stated `friction`.
        exposure, signals = plan.exposure, event_signals(plan, event)
        scope = self._scope(channel, event.get("touchpoint"))
        if plan.contact and self.repeats is not None:
            signals = self._repeat(event, at_ms, scope or f"{channel}:{ALL_CHANNELS}", signals)
        if not (exposure or signals):
            return signals
        names = self._counter_names(exposure, signals)
        windows.add((FRICTION, f"{channel}:{ALL_CHANNELS}"), at_ms, names, backfill=backfill)
        if scope is not None:
            windows.add((FRICTION, scope), at_ms, names, backfill=backfill)
        return signals

    def advance(self, watermark_ms: int) -> Advance:
        """Close windows up to the watermark (see `TumblingWindows.advance`), and once an
        hour forget contacts no accepted event can reach back to any more."""
        advance = self.windows.advance(watermark_ms)
        hour = watermark_ms // 3_600_000
        if self.repeats is not None and hour != self._expired_hour:
            self._expired_hour = hour
            reach = self.windows.size_ms + self.windows.lateness_ms + self.repeats.within_ms
            self.repeats.expire(watermark_ms - reach)
        return advance

    def _scope(self, channel: str, touchpoint: str | None) -> str | None:
        if not touchpoint:
            return None
        scope = f"{channel}:{touchpoint}"
        if scope not in self._scopes:
            if len(self._scopes) >= self.max_touchpoints:
                self.overflow += 1
                return None
            self._scopes.add(scope)
        return scope

    def _counter_names(self, exposure: bool, signals: tuple[Signal, ...]) -> tuple[str, ...]:
        key = (exposure, signals)
        names = self._names.get(key)
        if names is None:
            # Plain strings: counter names end up as JSON keys downstream.
            names = ((EXPOSURES,) if exposure else ()) + tuple(s.value for s in signals)
            if any(s not in POSITIVE_SIGNALS for s in signals):
                names += (ANY_FRICTION,)
            self._names[key] = names
        return names

    def _repeat(
        self, event: Event, at_ms: int, scope: str, signals: tuple[Signal, ...]
    ) -> tuple[Signal, ...]:
        assert self.repeats is not None
        person = self.person_of(event)
        if person is None:
            return signals
        result = self.repeats.observe(person, at_ms, scope)
        if result.now_repeat is not None:
            # A later contact of this person turned out to be a repeat: count it where it
            # was (its window may already be closed; a late update re-emits it).
            later_ms, later_scope = result.now_repeat
            self._late_repeat(event, later_ms, later_scope)
        if result.repeat and Signal.REPEAT_CONTACT not in signals:
            return (*signals, Signal.REPEAT_CONTACT)
        return signals

    def _late_repeat(self, event: Event, at_ms: int, scope: str) -> None:
        names = (Signal.REPEAT_CONTACT.value, ANY_FRICTION)
        backfill = bool(event.get("backfill"))
        channel_scope = f"{scope.split(':', 1)[0]}:{ALL_CHANNELS}"
        self.windows.add((FRICTION, channel_scope), at_ms, names, backfill=backfill)
        if channel_scope != scope:
            self.windows.add((FRICTION, scope), at_ms, names, backfill=backfill)


def stage_scope(journey: str, stage: str, channel: str) -> str:
    return f"{journey}:{stage}:{channel}"


def key_channel(key: WindowKey) -> str:
    """The one channel a window key counts (`*` for all of them): the first part of a
    friction or volume scope (`call_center:queue`), the last of a stage scope
    (`support:contact:call_center`)."""
    kind, scope = key
    if kind == STAGE:
        return scope.rpartition(":")[2]
    return scope.partition(":")[0]


def late_channel_keys(late_channels: Iterable[str]) -> Callable[[WindowKey], bool] | None:
    """Which window keys count only late channels' events (`processor.late_channels`: they
    land in batches, hours after their event time), so their windows stay countable for the
    late tolerance; None when there are no such channels. All-channel scopes are not: their
    timely events close them on time."""
    channels = frozenset(late_channels)
    if not channels:
        return None
    return lambda key: key_channel(key) in channels


def count_stage(
    windows: TumblingWindows,
    journey: str,
    stage: str,
    channel: str,
    *,
    what: str,
    at_ms: int,
    backfill: bool = False,
    amount: int = 1,
) -> None:
    """Count a journey entering, progressing from or dropping off at a stage (`what` is
    ENTERED, PROGRESSED or DROPPED), per channel and for all channels. From the journeys
    core: a `StageTransition` is PROGRESSED at `from_stage` and ENTERED at `to_stage` (both at
    `at_ms`, `amount=-1` when retracted); a `DropOff` is DROPPED at `deadline_ms` on its
    `last_channel`, and its `Retraction` the same with `amount=-1`."""
    names = (what,)
    for scope in (stage_scope(journey, stage, channel), stage_scope(journey, stage, ALL_CHANNELS)):
        windows.add((STAGE, scope), at_ms, names, backfill=backfill, amount=amount)


def count_progress(
    windows: TumblingWindows,
    journey: str,
    stage: str,
    channel: str,
    *,
    at_ms: int,
    entered_ms: int | None,
    backfill: bool = False,
    amount: int = 1,
) -> None:
    """Count a journey leaving `stage` for a later one at `at_ms`: PROGRESSED, and when its
    entry time is known and its entry window is fewer than `PROGRESS_LAGS` windows before,
    `progressed+<k>` (k: windows between the two), at `channel`, the stage's stage_channel."""
    names: tuple[str, ...] = (PROGRESSED,)
    if entered_ms is not None:
        size = windows.size_ms
        lag = (at_ms - at_ms % size - (entered_ms - entered_ms % size)) // size
        if 0 <= lag < PROGRESS_LAGS:
            names = (PROGRESSED, LAG_NAMES[lag])
    for scope in (stage_scope(journey, stage, channel), stage_scope(journey, stage, ALL_CHANNELS)):
        windows.add((STAGE, scope), at_ms, names, backfill=backfill, amount=amount)


class CappedWindows(Protocol):
    """Windows that can count names into a window up to a number of counters."""

    def add_capped(
        self, key: WindowKey, at_ms: int, names: Iterable[str], *, cap: int, amount: int = 1
    ) -> None: ...


def count_seen(
    windows: CappedWindows,
    journey: str,
    stage: str,
    channel: str,
    labels: Iterable[str],
    *,
    at_ms: int,
    amount: int = 1,
) -> None:
    """Count the friction signals (`journey_signals` labels) a journey that dropped off had
    met, where `count_stage` counts its drop-off (`amount=-1` when it is retracted)."""
    names = tuple(SAW + label for label in labels)
    if not names:
        return
    for scope in (stage_scope(journey, stage, channel), stage_scope(journey, stage, ALL_CHANNELS)):
        windows.add_capped((STAGE, scope), at_ms, names, cap=MAX_STAGE_COUNTERS, amount=amount)
