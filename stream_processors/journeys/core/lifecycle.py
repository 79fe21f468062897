"""The journey state machine of one track, folded hit by hit in event-time order.

This is the meaning of a journey (docs/concepts.md §4), as one function of a track's stage hits:

- a hit of an entry stage starts an instance when the track has none open;
- a hit of a later stage of the ordered path moves the open instance there (skipping stages
  is allowed); reaching the success stage converts it; a failure stage drops it off at once;
- an instance whose time limit at its stage passes without progress drops off at that
  deadline; one whose lifetime passes first expires;
- progress (a later stage than the dropped one) within the reopen window after a drop-off
  reopens the instance; anything else after it can only start a new instance.

Deadlines are checked before each hit (`fire_due(..., t - 1)`: a hit at the deadline itself
is still in time) and when the watermark moves. The same function serves events that arrive
in order (with live effects) and the re-fold of a track after a late hit (with none).
"""

from __future__ import annotations

from bisect import bisect_right
from operator import itemgetter

from stream_processors.journeys.core.deadlines import NEVER
from stream_processors.journeys.core.match import Definition, Hit
from stream_processors.journeys.core.state import (
    CONVERTED,
    DROPPED,
    EXPIRED,
    OPEN,
    Instance,
    Track,
    journey_id,
)


class Effects:
    """What a fold step did, for whoever turns it into records (`journey_live`). This base
    does nothing, which is what a re-fold needs: the caller compares the result with what was
    reported. A base class, not a protocol, so the re-fold can use it as it is."""

    __slots__ = ()

    def started(self, track: Track, inst: Instance) -> None:
        pass

    def advanced(self, track: Track, inst: Instance, previous: Hit) -> None:
        pass

    def ended(self, track: Track, inst: Instance) -> None:
        pass

    def reopened(self, track: Track, inst: Instance, hit: Hit) -> None:
        """Called before `inst` (still dropped off) reopens."""


NO_EFFECTS = Effects()


def deadline(definition: Definition, inst: Instance) -> int:
    """When an open instance drops off or expires unless it progresses."""
    due = inst.stage_ms + definition.limits_ms[inst.stage]
    lifetime = definition.lifetime_ms
    if lifetime is not None and inst.start_ms + lifetime < due:
        return inst.start_ms + lifetime
    return due


def fire_due(track: Track, inst: Instance, until: int, fx: Effects) -> bool:
    """End `inst` if it is open and its deadline is at or before `until`."""
    if inst.status != OPEN or inst.deadline_ms > until:
        return False
    d = track.definition
    lifetime = d.lifetime_ms
    if lifetime is not None and inst.start_ms + lifetime == inst.deadline_ms:
        inst.status = EXPIRED
    else:
        inst.status = DROPPED
    inst.ended_ms, inst.deadline_ms = inst.deadline_ms, NEVER
    fx.ended(track, inst)
    return True


def fold_hit(track: Track, hit: Hit, fx: Effects) -> bool:
    """Apply one stage hit, later than every hit folded into `track` before; return whether
    anything changed."""
    instances = track.instances
    inst = instances[-1] if instances else None
    fired = False
    if inst is not None and inst.status == OPEN:
        if inst.deadline_ms < hit[0]:
            fired = fire_due(track, inst, hit[0] - 1, fx)
        if inst.status == OPEN:
            return _progress(track, inst, hit, fx)
    d = track.definition
    stage = hit[2]
    if inst is not None and _reopens(d, inst, hit):
        fx.reopened(track, inst, hit)
        inst.status, inst.ended_ms, inst.reopened_ms = OPEN, None, hit[0]
        _progress(track, inst, hit, fx)
        return True
    if stage in d.entries:
        fresh = Instance(journey_id(d, hit[1]), hit)
        track.instances = instances + (fresh,)
        fx.started(track, fresh)
        if stage == d.success:
            fresh.status, fresh.ended_ms = CONVERTED, hit[0]
            fx.ended(track, fresh)
        else:
            fresh.deadline_ms = deadline(d, fresh)
        return True
    return fired


def _progress(track: Track, inst: Instance, hit: Hit, fx: Effects) -> bool:
    d = track.definition
    stage = hit[2]
    if stage > d.success:  # a failure stage: the journey ends here
        inst.status, inst.ended_ms, inst.failure = DROPPED, hit[0], stage
        inst.deadline_ms = NEVER
        fx.ended(track, inst)
        return True
    if stage <= inst.stage:
        return False
    previous = inst.reached[-1]
    inst.reached = inst.reached + (hit,)
    inst.stage, inst.stage_ms = stage, hit[0]
    fx.advanced(track, inst, previous)
    if stage == d.success:
        inst.status, inst.ended_ms, inst.deadline_ms = CONVERTED, hit[0], NEVER
        fx.ended(track, inst)
    else:
        inst.deadline_ms = deadline(d, inst)
    return True


def _reopens(d: Definition, inst: Instance, hit: Hit) -> bool:
    """A returning customer: progress soon enough after a time-limit drop-off."""
    return (
        inst.status == DROPPED
        and inst.failure < 0
        and inst.ended_ms is not None
        and hit[0] <= inst.ended_ms + d.reopen_ms
        and inst.stage < hit[2] <= d.success
        and (d.lifetime_ms is None or hit[0] <= inst.start_ms + d.lifetime_ms)
    )


def track_due(track: Track, seal_after_ms: int) -> int:
    """The next event time at which `track` needs a wake: its open instance's deadline, or
    when its oldest ended instance (or, with none left, its last hit) can be sealed."""
    instances = track.instances
    if instances:
        last = instances[-1]
        if last.status == OPEN:
            due = last.deadline_ms
            if len(instances) == 1:
                return due
            return min(due, seal_time(track, instances[0], seal_after_ms))
        return seal_time(track, instances[0], seal_after_ms)
    if track.hits:
        return track.hits[-1][0] + seal_after_ms
    return NEVER


def seal_time(track: Track, inst: Instance, seal_after_ms: int) -> int:
    """When no late hit can change an ended instance any more (or NEVER while open)."""
    if inst.ended_ms is None or inst.status == OPEN:
        return NEVER
    reopen = track.definition.reopen_ms if inst.status == DROPPED and inst.failure < 0 else 0
    return inst.ended_ms + reopen + seal_after_ms


def seal(track: Track, watermark: int, tolerance: int, hits_at: int | None = None) -> None:
    """Forget ended instances no late event can change any more, and the hits before
    the oldest instance kept that are beyond the late tolerance (the track's own fold
    never needs them again, and an identity merge with another track takes only what is
    within the tolerance into account, like late events). `hits_at`, when later than the
    watermark, is the time whose tolerance bounds the hits kept (an identity merge's own
    event time); instances are sealed at the watermark whatever it is."""
    instances = track.instances
    sealed = 0
    while sealed < len(instances):
        if seal_time(track, instances[sealed], tolerance) > watermark:
            break
        sealed += 1
    if sealed:
        track.instances = instances = instances[sealed:]
    floor = max(watermark, watermark if hits_at is None else hits_at) - tolerance
    if instances:
        floor = min(floor, instances[0].start_ms - 1)
    if floor > track.floor_ms:
        track.floor_ms = floor
        hits = track.hits
        if hits and hits[0][0] <= floor:
            track.hits = hits[bisect_right(hits, floor, key=itemgetter(0)) :]
        if track.ghosts:
            track.ghosts = _ghosts_after(track.ghosts, floor)


def _ghosts_after(ghosts: dict[str, Instance], floor: int) -> dict[str, Instance] | None:
    """The ghosts that started after `floor` (a function of its own: the comprehension's
    closure would cost `seal` a cell on every call)."""
    return {k: g for k, g in ghosts.items() if g.start_ms > floor} or None
