"""The journey core of one partition (docs/concepts.md §4): per person and definition, journeys
that start, advance, convert, drop off, expire and start again; UX sessions per channel; all
decided in event time by the watermark the caller hands in.

How time works here:

- An event later than the watermark waits in its person's buffer; when the watermark passes
  it, the person's buffered events are applied in (event time, event id) order. So events
  that arrive out of order within the allowed lateness (which the watermark already
  subtracts) give exactly what in-order arrival gives.
- Deadlines (time limits, lifetimes) fire when the watermark passes them: the watermark of
  the timely channels (web, app), which the caller computes. A drop-off is reported once.
- An event at or behind the watermark (a late-arriving channel: store and call-center
  batches; or any straggler) is applied at once, if it is less than `late_tolerance_ms`
  behind; older ones are `Rejected`. If it lands out of order in its track, the track is
  folded again (`journey_refold`): a drop-off it contradicts is retracted, and every record
  converges to what in-order arrival would have given.
- A customer who comes back with progress within the definition's reopen window after a
  drop-off reopens the journey: the drop-off is retracted, the journey goes on.

Every journey instance has exactly one outcome that is not retracted (or is `merged` into
another instance, which then carries it). Pure: no I/O, no clock; state per person is plain
data (`snapshot_person` / `restore_person`), and `take_dirty()` names the persons changed.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from schemas.definitions import DefinitionSpec
from stream_processors.journeys.core.deadlines import NEVER, DeadlineWheel
from stream_processors.journeys.core.lifecycle import fire_due, fold_hit, seal, track_due
from stream_processors.journeys.core.live import LiveEffects
from stream_processors.journeys.core.match import Definition, Hit, compile_definition
from stream_processors.journeys.core.merge import Aliases, absorb
from stream_processors.journeys.core.outputs import JourneyUpdate, Output, Rejected, journey_update
from stream_processors.journeys.core.plans import EventPlans, Stage
from stream_processors.journeys.core.refold import behind, reconcile, refold
from stream_processors.journeys.core.sessions import Sessions
from stream_processors.journeys.core.settings import (
    EventTimes,
    JourneySettings,
    event_ms,
    friction_by_properties,
)
from stream_processors.journeys.core.signals import Labels, SignalsOf, stated_signals
from stream_processors.journeys.core.state import (
    OPEN,
    Freezer,
    Person,
    Track,
    dump_person,
    is_cold,
    load_person,
)
from stream_processors.journeys.core.tally import tally

_TIME_ID = itemgetter(0, 1)
_SOME_FRICTION = ("friction",)  # what an `is_friction` predicate says an event has
_EMPTY: Mapping[str, Any] = {}


class Census(NamedTuple):
    persons: int
    open_journeys: int
    buffered_events: int  # waiting for the watermark to pass them
    frozen_persons: int = 0  # cold: kept as their snapshot until needed


class JourneyCore:
    """Open journeys, sessions and buffered events of one partition."""

    def __init__(
        self,
        definitions: Sequence[DefinitionSpec],
        settings: JourneySettings | None = None,
        is_friction: Callable[[Mapping[str, Any]], bool] | None = None,
        signals: SignalsOf | None = None,
    ) -> None:
        """`signals` names an event's friction signals (`journey_signals.mapped_signals`
        for the friction mapping); by default those a version 2 event states and the
        properties `settings.friction_properties` names. `is_friction`, if given instead,
        only says whether an event has friction (its signals are then unnamed)."""
        self.settings = s = settings or JourneySettings()
        ids = [spec.id for spec in definitions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"definition ids must be distinct: {ids}")
        self.definitions = tuple(compile_definition(d, i) for i, d in enumerate(definitions))
        self._by_key = {d.key: d for d in self.definitions}
        # What events mean; the per-event path reads its caches directly.
        self._meaning = m = EventPlans(self.definitions, definitions, s.task_event_types)
        self._plans, self._names, self._labels = m.plans, m.names, m.labels
        # The default finds nothing in an event without properties, typed block or stated
        # friction: most events, which then skip the call.
        self._plain_friction = signals is None and is_friction is None
        if signals is None:
            signals = (
                _flagged(is_friction) if is_friction else stated_signals(s.friction_properties)
            )
        self._signals = signals
        self._clock = EventTimes()
        self._tolerance = s.late_tolerance_ms
        self.watermark_ms = -NEVER
        self._people: dict[str, Person] = {}
        self._tracks: DeadlineWheel[Track] = DeadlineWheel(s.wheel_resolution_ms)
        self._release: DeadlineWheel[Person] = DeadlineWheel(s.release_resolution_ms)
        self._sessions = Sessions(
            s.session_gap_ms, s.late_channels, s.wheel_resolution_ms, s.session_report_ms
        )
        self._live = LiveEffects()
        self._dirty: set[str] = set()
        self._freezer = Freezer()
        ttl = s.alias_ttl_ms if s.alias_ttl_ms is not None else s.late_tolerance_ms
        self._aliases = Aliases(ttl)
        self.counters = {
            "rejected": 0,
            "refolds": 0,
            "ignored_hits": 0,
            "orphaned": 0,
            "thawed": 0,
        }

    # -- events and time ------------------------------------------------------------------

    def observe(self, event: Mapping[str, Any], person_id: str) -> list[Output]:
        """Take one touchpoint (as decoded JSON) of person `person_id`. Events ahead of the
        watermark wait for it (and return nothing yet); late ones apply at once."""
        return self.observe_batch(((event, person_id),))

    def observe_batch(self, events: Iterable[tuple[Mapping[str, Any], str]]) -> list[Output]:
        """`observe` for (event, person id) pairs in arrival order, as one envelope brings
        them; the records of the late ones."""
        out: list[Output] = []
        people, dirty, release = self._people, self._dirty, self._release
        resolve = self._aliases.resolve if self._aliases else None
        # Looked up once per envelope, not once per event.
        watermark, clock = self.watermark_ms, self._clock
        for raw, given in events:
            # Decoded JSON is a dict already; any other mapping is copied into one.
            event: dict[str, Any] = raw if type(raw) is dict else dict(raw)
            t = clock.ms(event["occurred_at"])
            pid = given if resolve is None else resolve(given)
            person = people.get(pid)
            if person is None:
                person = people[pid] = Person(pid)
            dirty.add(pid)
            if t > watermark:
                pending = person.pending
                if pending is None:
                    person.pending = (t, event["event_id"], event)
                elif isinstance(pending, list):
                    pending.append((t, event["event_id"], event))
                else:
                    person.pending = [pending, (t, event["event_id"], event)]
                if t < person.wake_ms:
                    release.schedule(person, t)
            else:
                self._late(person, t, event, out)
        return out

    def _late(self, person: Person, t: int, event: dict[str, Any], out: list[Output]) -> None:
        """An event at or behind the watermark: applied at once, unless too old."""
        if t <= self.watermark_ms - self._tolerance:
            self.counters["rejected"] += 1
            self._forget_if_empty(person)
            out.append(Rejected(event["event_id"], person.id, t, self.watermark_ms, "too_late"))
            return
        self._apply(person, t, event["event_id"], event, out)
        self._fire_passed(person, out)

    def _fire_passed(self, person: Person, out: list[Output]) -> None:
        """After a late event: a deadline it set may already lie behind the watermark."""
        live, watermark = self._live, self.watermark_ms
        live.out = out
        for track in person.tracks:
            if track.instances and track.instances[-1].deadline_ms <= watermark:
                fire_due(track, track.instances[-1], watermark, live)
        if live.changed:
            live.flush()

    def advance_watermark(self, timely_ms: int, late_ms: int | None = None) -> list[Output]:
        """Move event time to `timely_ms` (the timely channels' watermark; it never moves
        back): release buffered events up to it, fire the deadlines it passed, close idle
        sessions. Sessions of late-arriving channels close on `late_ms` (default: the
        watermark minus the late tolerance)."""
        out: list[Output] = []
        if timely_ms > self.watermark_ms:
            self.watermark_ms = watermark = timely_ms
            dirty = self._dirty
            for person in self._release.pop_due(watermark):
                pending = person.pending
                if pending is None or person.gone:
                    continue
                if type(pending) is tuple and pending[0] <= watermark:  # the common case
                    person.pending = None
                    self._apply(person, pending[0], pending[1], pending[2], out)
                    dirty.add(person.id)
                else:
                    self._release_person(person, watermark, out)
            for track in self._tracks.pop_due(watermark):
                self._wake(track, watermark, out)
            self._dirty.update(self._aliases.expire(watermark))
        late = late_ms if late_ms is not None else self.watermark_ms - self._tolerance
        for person in self._sessions.sweep(self._people, self.watermark_ms, late, out):
            self._dirty.add(person.id)
            self._forget_if_empty(person)
        return out

    def _release_person(self, person: Person, watermark: int, out: list[Output]) -> None:
        pending = person.buffered()
        if not pending:
            return
        if len(pending) == 2:  # most often in order already: no key tuples to sort by
            (t0, id0, _), (t1, id1, _) = pending
            if t1 < t0 or (t1 == t0 and id1 < id0):
                pending.reverse()
        elif len(pending) > 2:
            pending.sort(key=_TIME_ID)
        if pending[-1][0] <= watermark:
            ready, person.pending = pending, None
        else:
            cut = bisect_right(pending, watermark, key=itemgetter(0))
            ready = pending[:cut]
            if cut:  # else nothing is due yet: the buffer stays as it is
                person.pending = pending[cut:]
            self._release.schedule(person, pending[cut][0])
        for t, event_id, event in ready:
            self._apply(person, t, event_id, event, out)
        self._dirty.add(person.id)

    def _apply(
        self, person: Person, t: int, event_id: str, event: dict[str, Any], out: list[Output]
    ) -> None:
        """One event in event-time order (or a late one): sessions, counts, stage hits."""
        if person.frozen is not None:
            self._thaw(person)
        event_type, raw_channel = event["event_type"], event["channel"]
        by_channel = self._plans.get(event_type)
        plan = by_channel.get(raw_channel) if by_channel is not None else None
        if plan is None:
            plan = self._meaning.plan(event_type, raw_channel)
        channel, stages, task, members = plan
        touchpoint = event.get("touchpoint")
        if touchpoint is not None:
            touchpoint = self._names.get(touchpoint) or self._meaning.name(touchpoint)
        labels: Labels | None = None
        if self._plain_friction and not (
            event.get("properties") or event.get("friction") or event.get(raw_channel)
        ):
            friction = 0  # what the default says without calling it
        else:
            found = self._signals(event)
            friction = 1 if found else 0  # an event counts once, whatever it carries
            if found:
                labels = self._labels.get((found, channel, touchpoint))
                if labels is None:
                    labels = self._meaning.label(found, channel, touchpoint)
        if stages is None or task is None:
            stages, task = self._meaning.match(event, event_type, channel, touchpoint)
        if members is None:
            properties = event.get("properties") or _EMPTY
            members = self._meaning.members(stages, event_type, channel, properties)
        # Its time, id, channel and touchpoint go on as arguments, not as one tuple: no tuple
        # is built and freed per event.
        self._sessions.observe(
            person, t, event_id, channel, touchpoint, friction=friction, task=task, out=out
        )
        live = self._live
        live.out, live.friction, live.labels = out, friction, labels
        if members and person.tracks:  # only the journeys it belongs to count it
            tally(
                person.tracks,
                members,
                t,
                channel,
                touchpoint,
                friction=friction,
                labels=labels,
                live=live,
            )
        if stages:  # most events match no stage
            self._hit_stages(person, stages, t, event_id, channel, touchpoint=touchpoint, out=out)
        if live.changed:
            live.flush()

    def _hit_stages(
        self,
        person: Person,
        stages: tuple[Stage, ...],
        t: int,
        event_id: str,
        channel: str,
        *,
        touchpoint: str | None,
        out: list[Output],
    ) -> None:
        """Fold the event's stage hits into their tracks, and file each track's next
        deadline; `_hit` for hits out of order, the common case of it inline."""
        for definition, stage, hold in stages:
            for track in person.tracks:
                if track.definition is definition and track.hold == hold:
                    break
            else:
                track = person.track(definition, hold)
            hit = (t, event_id, stage, channel, touchpoint)
            hits, instances = track.hits, track.instances
            last = instances[-1] if instances else None
            ended = last.ended_ms if last is not None else None
            # Out of order (`_behind`), or at or behind the floor: `_hit` folds it.
            if (hits and (t <= hits[-1][0] or (ended is not None and t <= ended))) or (
                t <= track.floor_ms
            ):
                changed = self._hit(track, hit, out)
            else:
                track.hits = hits + (hit,)
                if (
                    last is not None
                    and last.status == OPEN
                    and last.deadline_ms >= t
                    and stage <= last.stage
                ):
                    continue  # an earlier stage of an open journey again: no change
                changed = fold_hit(track, hit, self._live)
            # A track of hits that started no journey (a call before any help page) is filed
            # too, so it is sealed once its hits pass the tolerance; unfiled, it and its person
            # stayed in memory for good (and only a restore filed it).
            if changed or not instances:
                due = track_due(track, self._tolerance)
                if due < track.wake_ms:  # later deadlines: the entry filed already wakes it
                    self._tracks.schedule(track, due)

    def _hit(self, track: Track, hit: Hit, out: list[Output]) -> bool:
        """Fold one hit into its track; return whether the track's state changed."""
        hits = track.hits
        t = hit[0]
        if t <= track.floor_ms:
            self.counters["ignored_hits"] += 1
            return False
        if hits and (t <= hits[-1][0] or behind(track, hit)):
            if any(h[1] == hit[1] for h in hits):
                return False  # the same event again: nothing new
            self._live.flush()
            ordered = list(hits)
            insort(ordered, hit, key=_TIME_ID)
            track.hits = tuple(ordered)
            self.counters["refolds"] += 1
            fresh = refold(track, self.watermark_ms)
            reconcile(track, fresh, hit, reason="late_event", out=out)
            return True
        track.hits = hits + (hit,)
        return fold_hit(track, hit, self._live)

    def _wake(self, track: Track, watermark: int, out: list[Output]) -> None:
        """A track's deadline or sealing time passed (or an early, stale entry woke it)."""
        person = self._people.get(track.person)
        if person is None or track not in person.tracks:  # by identity: Track has no __eq__
            return  # merged or restored over since it was filed
        if person.frozen is not None:
            # Thawed even when the entry is an early one (the track's due moved later since):
            # the seal below trims what the live person's would, and a merge of the person
            # later takes the same hits.
            self._thaw(person)
        instances = track.instances
        live = self._live
        if instances and instances[-1].status == OPEN:
            live.out = out
            fire_due(track, instances[-1], watermark, live)
            live.flush()
        seal(track, watermark, self._tolerance)
        if not track.instances and not track.hits:
            person.drop_track(track)
            self._forget_if_empty(person)
        else:
            self._tracks.schedule(track, track_due(track, self._tolerance))
        self._dirty.add(person.id)

    def _forget_if_empty(self, person: Person) -> None:
        if person.is_empty() and not person.gone:
            del self._people[person.id]
            person.gone = True

    # -- identity merges ------------------------------------------------------------------

    def move_person(
        self, old: str, new: str, at_ms: int | None = None, *, alias: bool = True
    ) -> list[Output]:
        """Identity merge: person `old` is now `new`. Its journeys, sessions and buffered
        events join `new`'s; journeys of one definition are folded together (the instance
        whose start came first keeps its id, the other is reported `merged` into it). Events
        still arriving for `old` go to `new` for `alias_ttl_ms` of event time, unless
        `alias` is false: the caller knows none will come here (they are read elsewhere and
        sent on already stamped `new`). `at_ms`: the merge's own event time (the link's),
        which bounds the hits it takes (`absorb`)."""
        if old == new:
            return []
        if alias:
            self._aliases.add(old, new, self.watermark_ms)
        source = self._people.pop(old, None)
        self._dirty.update((old, new))
        if source is None:
            return []
        if source.frozen is not None:
            self._thaw(source)
        source.gone = True
        return self._absorb_into(new, source, at_ms)

    def resolve(self, pid: str) -> str:
        """The person `pid` is now here, following the merges this core made (aliases)."""
        return self._aliases.resolve(pid) if self._aliases else pid

    def export_person(self, pid: str) -> dict[str, Any] | None:
        """A person's state to carry to another partition (`import_person` there), or None."""
        person = self._people.get(pid)
        return self._dump(person) if person is not None else None

    def import_person(
        self, pid: str, data: Mapping[str, Any], at_ms: int | None = None
    ) -> list[Output]:
        """Merge exported state (another partition's person) into person `pid`; `at_ms` as
        for `move_person`."""
        source, skipped = load_person(pid, data, self._by_key, self._share_name)
        self.counters["orphaned"] += skipped
        self._dirty.add(pid)
        return self._absorb_into(pid, source, at_ms)

    def drop_person(self, pid: str, moved_to: str | None = None) -> None:
        """Forget a person (exported elsewhere); `moved_to` aliases its later events."""
        gone = self._people.pop(pid, None)
        if gone is not None:
            gone.gone = True
            # Its wheel entries stay until they are due (and then wake nothing): they must
            # not keep its hits, journeys and buffered events in memory until then.
            for track in gone.tracks:
                track.hits = ()
                track.instances = ()
                track.ghosts = None
            gone.pending = None
            gone.frozen = None
        self._dirty.add(pid)
        if moved_to is not None and moved_to != pid:
            self._aliases.add(pid, moved_to, self.watermark_ms)

    def erase_person(self, pid: str) -> None:
        """Forget everything of a person, their alias to the person they merged into
        included (an erasure: docs/concepts.md, Privacy)."""
        self.drop_person(pid)
        self._aliases.forget(pid)

    def held_persons(self) -> list[str]:
        """Every person id the core holds anything of: persons, and aliases of merged ones."""
        return [*self._people, *self._aliases.olds()]

    def _absorb_into(self, pid: str, source: Person, at_ms: int | None) -> list[Output]:
        target = self._people.get(pid)
        if target is None:
            target = self._people[pid] = Person(pid)
        elif target.frozen is not None:
            self._thaw(target)
        out: list[Output] = []
        changed = absorb(
            target,
            source,
            self.watermark_ms,
            self._sessions,
            out,
            tolerance_ms=self._tolerance,
            merged_ms=at_ms,
        )
        # A track from a partition further ahead in event time had its floor raised there:
        # events this partition still accepts must not be ignored by it.
        floor = self.watermark_ms - self._tolerance
        for track in changed:
            track.floor_ms = min(track.floor_ms, floor)
            self._tracks.schedule(track, track_due(track, self._tolerance))
        if target.pending:
            first = min(p[0] for p in target.buffered())
            if first <= self.watermark_ms:  # buffered on a partition that was behind this one
                self._release_person(target, self.watermark_ms, out)
            else:
                self._release.schedule(target, first)
        # The merged person's deadlines may lie behind the watermark already (state that
        # travelled from another partition): fire them now, not at the next advance, which
        # may never come in a replay that has closed its time.
        self._fire_passed(target, out)
        return out

    # -- state ----------------------------------------------------------------------------

    def take_dirty(self) -> set[str]:
        """The persons whose state changed since the last call (to persist their snapshot)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def snapshot_person(self, pid: str) -> dict[str, Any] | None:
        """One person's state as JSON-ready data; None if the core holds nothing for them."""
        person = self._people.get(pid)
        if person is not None:
            return self._dump(person)
        return self._aliases.snapshot(pid)

    def checkpoint(self, pid: str) -> dict[str, Any] | bytes | None:
        """`snapshot_person` for the changelog, which the stage writes once per transaction.
        A person left cold (no open journey, session or buffered event) is frozen as that
        snapshot from now on (`Freezer.freeze`) and thawed when anything needs it: its
        value is then that snapshot, encoded already (JSON bytes)."""
        person = self._people.get(pid)
        if person is None:
            return self._aliases.snapshot(pid)
        if person.frozen is None and is_cold(person):
            return self._freezer.freeze(person)
        if person.frozen is not None and person.pending is None:
            return self._freezer.json(person)
        return self._dump(person)

    def _dump(self, person: Person) -> dict[str, Any]:
        return self._freezer.data(person) if person.frozen is not None else dump_person(person)

    def _thaw(self, person: Person) -> None:
        self._freezer.thaw(person, self._by_key, self._share_name)
        self.counters["thawed"] += 1

    def restore_person(self, pid: str, data: Mapping[str, Any]) -> None:
        """Put back a person from `snapshot_person` output (after a restart)."""
        if "moved_to" in data:
            self._aliases.restore(pid, data)
            return
        person, skipped = load_person(pid, data, self._by_key, self._share_name)
        self.counters["orphaned"] += skipped
        replaced = self._people.get(pid)
        if replaced is not None:
            replaced.gone = True
        self._people[pid] = person
        for track in person.tracks:
            self._tracks.schedule(track, track_due(track, self._tolerance))
        for session in person.sessions or ():
            self._sessions.schedule(session)
            if session.queued:
                self._sessions.queue(session)
        if person.pending:
            self._release.schedule(person, min(p[0] for p in person.buffered()))
        elif is_cold(person):
            self._freezer.freeze(person)

    def _share_name(self, name: str) -> str:
        """The name object the core's persons share (a restored person's are new ones)."""
        return self._names.get(name) or self._meaning.name(name)

    def restore_watermark(self, watermark_ms: int) -> None:
        """Set the watermark a restored partition had reached (no deadlines fire now)."""
        self.watermark_ms = max(self.watermark_ms, watermark_ms)
        self._sessions.restore_time(self.watermark_ms)

    def persons(self) -> list[str]:
        """The persons the core holds state for."""
        return sorted(self._people)

    def open_journeys(self) -> int:
        """How many journey instances are open (a full scan: for metrics and tests)."""
        return self.census().open_journeys

    def census(self) -> Census:
        """What the core holds, counted in one scan (for the stage's gauges): memory at scale
        is persons, their open journeys and the events buffered until time passes them."""
        persons = len(self._people)
        opened = buffered = frozen = 0
        for person in self._people.values():
            if person.frozen is not None:
                frozen += 1
            for track in person.tracks:
                for inst in track.instances:
                    if inst.status == OPEN:
                        opened += 1
            pending = person.pending
            if pending is not None:
                buffered += len(pending) if isinstance(pending, list) else 1
        return Census(persons, opened, buffered, frozen)

    def journeys_of(self, pid: str) -> list[JourneyUpdate]:
        """The current state of a person's kept journeys (for tests and debugging)."""
        person = self._people.get(pid)
        if person is None:
            return []
        if person.frozen is not None:
            self._thaw(person)
        return [journey_update(t, i) for t in person.tracks for i in t.instances]


def _flagged(is_friction: Callable[[Mapping[str, Any]], bool]) -> SignalsOf:
    """Signals from a predicate that only says whether an event has friction."""

    def signals_of(event: Mapping[str, Any]) -> tuple[str, ...]:
        return _SOME_FRICTION if is_friction(event) else ()

    return signals_of


__all__ = ["Definition", "JourneyCore", "JourneySettings", "event_ms", "friction_by_properties"]
