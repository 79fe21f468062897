"""Folding a track again when a hit arrives out of order (a late-arriving channel, or an
identity merge that joins two tracks), and reporting the difference as corrections.

The fold of a track's hits in event-time order is what its journeys *are*; the records sent
so far describe the fold of the hits known so far. After a late hit the track is folded again
from its floor, and the two are compared instance by instance (same id: same start event):

- a reported outcome that no longer holds gets a `Retraction`; a new drop-off a `DropOff`;
- stage transitions that changed are sent again with a higher version, and ones that no
  longer happened are sent as retracted;
- an instance whose start event now belongs to another instance is `merged` into it (its
  outcome retracted, its counts added there); one that appears is reported like a new one.

So the reported records always converge to the event-time fold of every hit received
within the allowed lateness, whatever the order of arrival.
"""

from __future__ import annotations

from stream_processors.journeys.core.lifecycle import NO_EFFECTS, fire_due, fold_hit
from stream_processors.journeys.core.match import Hit
from stream_processors.journeys.core.outputs import (
    Output,
    journey_update,
    report_dropoff,
    retraction,
    transition,
)
from stream_processors.journeys.core.signals import merged
from stream_processors.journeys.core.state import DROPPED, MERGED, OPEN, Instance, Track


def refold(track: Track, watermark_ms: int) -> tuple[Instance, ...]:
    """The instances of `track.hits` folded from scratch, deadlines fired up to the
    watermark. `track` itself is not changed."""
    scratch = Track(track.definition, track.hold, track.person)
    for hit in track.hits:
        fold_hit(scratch, hit, NO_EFFECTS)
    if scratch.instances:
        fire_due(scratch, scratch.instances[-1], watermark_ms, NO_EFFECTS)
    return scratch.instances


def reconcile(
    track: Track,
    fresh: tuple[Instance, ...],
    cause: Hit | None,
    *,
    reason: str,
    out: list[Output],
    always: bool = False,
) -> None:
    """Replace `track.instances` by `fresh`, reporting every difference (`always`: report
    each instance again even if unchanged, for instance because its person changed)."""
    current = {inst.id: inst for inst in track.instances}
    ghosts = dict(track.ghosts or {})
    known = {**ghosts, **current}
    fresh_ids = {inst.id for inst in fresh}
    olds = {inst.id: known.get(inst.id) for inst in fresh}
    for inst in fresh:
        old = olds[inst.id]
        if old is not None and old.status != MERGED:
            _carry(old, inst)
        ghosts.pop(inst.id, None)
    for gone in sorted(current.values(), key=lambda i: i.start_ms):
        if gone.id not in fresh_ids:
            _vanish(track, gone, fresh, out)
            ghosts[gone.id] = gone
    for inst in fresh:
        _report(track, olds[inst.id], inst, cause, reason=reason, out=out, always=always)
    track.instances = fresh
    track.ghosts = ghosts or None


def behind(track: Track, hit: Hit) -> bool:
    """Whether `hit` belongs before what the track has folded: an earlier hit, or a time at
    or before a deadline that already fired (progress then was in time, so the drop-off or
    expiry it contradicts must be folded again, not reopened)."""
    last = track.hits[-1]
    t = hit[0]
    if t < last[0] or (t == last[0] and hit[1] <= last[1]):
        return True
    return _ended_after(track.instances[-1] if track.instances else None, t)


def _ended_after(last: Instance | None, t: int) -> bool:
    """Whether the track's last instance ended at or after `t`."""
    if last is None:
        return False
    ended = last.ended_ms
    return ended is not None and t <= ended


def _carry(old: Instance, inst: Instance) -> None:
    """Counts are tallied per event, not folded: keep what the reported instance had."""
    inst.version = old.version
    # The same outcome still stands as it was reported; a changed one is reported anew.
    inst.reported = old.reported if _outcome(old) == _outcome(inst) else None
    inst.touches = max(old.touches, inst.touches)
    inst.friction = max(old.friction, inst.friction)
    inst.signals = merged(inst.signals, old.signals)
    inst.channels = old.channels + tuple(c for c in inst.channels if c not in old.channels)
    if old.last_ms >= inst.last_ms:
        inst.last_channel, inst.last_touchpoint, inst.last_ms = (
            old.last_channel,
            old.last_touchpoint,
            old.last_ms,
        )


def _vanish(track: Track, gone: Instance, fresh: tuple[Instance, ...], out: list[Output]) -> None:
    """`gone`'s start event is now part of another instance (or of none)."""
    target = None
    for inst in fresh:
        if inst.start_ms <= gone.start_ms:
            target = inst
    if gone.status not in (OPEN, MERGED):
        out.append(retraction(track, gone, "merged", None))
    gone.version += 1
    for i, hit in enumerate(gone.reached):
        out.append(transition(track, gone, hit, gone.reached[i - 1] if i else None, True))
    if gone.status != MERGED and target is not None:
        target.touches += gone.touches
        target.friction += gone.friction
        target.signals = merged(target.signals, gone.signals)
        target.channels += tuple(c for c in gone.channels if c not in target.channels)
    gone.status, gone.ended_ms = MERGED, None
    gone.merged_into = target.id if target is not None else None
    out.append(journey_update(track, gone))


def _outcome(inst: Instance) -> tuple[int, int, int | None, int]:
    return (inst.status, inst.stage, inst.ended_ms, inst.failure)


def _report(
    track: Track,
    old: Instance | None,
    inst: Instance,
    cause: Hit | None,
    *,
    reason: str,
    out: list[Output],
    always: bool,
) -> None:
    if old is None or old.status == MERGED:
        inst.version = (old.version if old is not None else 0) + 1
        inst.merged_into = None
        for i, hit in enumerate(inst.reached):
            out.append(transition(track, inst, hit, inst.reached[i - 1] if i else None))
        if inst.status == DROPPED:
            out.append(report_dropoff(track, inst))
        out.append(journey_update(track, inst))
        return
    steps = _steps(inst)
    old_steps = _steps(old)
    changed_steps = [pair for stage, pair in steps.items() if old_steps.get(stage) != pair]
    removed = [pair for stage, pair in old_steps.items() if stage not in steps]
    outcome_changed = _outcome(old) != _outcome(inst)
    if not (changed_steps or removed or outcome_changed or always):
        return
    inst.version = old.version + 1
    if outcome_changed and old.status != OPEN:
        why = reason
        if inst.reopened_ms is not None and old.ended_ms is not None:
            why = "reopened" if inst.reopened_ms > old.ended_ms else reason
        out.append(retraction(track, old, why, cause))
    for hit, prev in changed_steps:
        out.append(transition(track, inst, hit, prev))
    for hit, prev in removed:
        out.append(transition(track, inst, hit, prev, True))
    if outcome_changed and inst.status == DROPPED:
        out.append(report_dropoff(track, inst))
    out.append(journey_update(track, inst))


def _steps(inst: Instance) -> dict[int, tuple[Hit, Hit | None]]:
    """Stage -> (the hit that reached it, the one before)."""
    reached = inst.reached
    return {hit[2]: (hit, reached[i - 1] if i else None) for i, hit in enumerate(reached)}
