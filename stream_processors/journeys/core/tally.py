"""Counting one event on the journeys it belongs to, at its time: touchpoints, friction,
channels, the last touchpoint and the friction signals met (`journey_signals` labels).

An event belongs to a journey if one of the definition's stages matches it, or one of its
`includes` rules (`EventPlans.members`); a journey of another definition that happens to be
open at the same time does not count it. Counts are tallied per event as it is applied, not
folded from stage hits: an event that matches a stage without moving the journey (an earlier
stage again) or that only an include rule takes still counts on the instance that was
current at its time. `tally` is the journey core's per-event path; `count_on` serves the less
common cases (a late event, an instance whose deadline passed before the event).
"""

from __future__ import annotations

from stream_processors.journeys.core.lifecycle import fire_due
from stream_processors.journeys.core.live import LiveEffects
from stream_processors.journeys.core.plans import Member
from stream_processors.journeys.core.signals import Labels, remember
from stream_processors.journeys.core.state import OPEN, Track


def tally(
    tracks: tuple[Track, ...],
    members: tuple[Member, ...],
    t: int,
    channel: str,
    touchpoint: str | None,
    *,
    friction: int,
    labels: Labels | None,
    live: LiveEffects,
) -> None:
    """Count one event (its time, channel and touchpoint) on the instance of its time of each
    track it belongs to (`members`), the common case inline: the track's last instance is
    open and the event within its time."""
    for track in tracks:
        definition, hold = track.definition, track.hold
        for member in members:  # one or two: a loop, not a set built per event
            if member[0] is definition and member[1] == hold:
                break
        else:
            continue
        instances = track.instances
        if not instances:
            continue
        last = instances[-1]
        if last.status == OPEN and last.start_ms <= t <= last.deadline_ms:
            last.touches += 1
            if friction:
                last.friction += friction
                if labels is not None:
                    last.signals = remember(last.signals, labels)
            # `last_channel` is always among `channels`: most events need not read them.
            if channel is not last.last_channel and channel not in last.channels:
                last.channels = last.channels + (channel,)
            if t >= last.last_ms:
                last.last_channel, last.last_touchpoint, last.last_ms = channel, touchpoint, t
        else:
            count_on(track, t, channel, touchpoint, friction, labels=labels, live=live)


def count_on(
    track: Track,
    t: int,
    channel: str,
    touchpoint: str | None,
    friction: int,
    *,
    labels: Labels | None,
    live: LiveEffects,
) -> None:
    """Tally one event on the instance of `track` that was current at its time (firing a
    deadline that passed before it first, as in-order arrival would have)."""
    instances = track.instances
    if not instances:
        return
    last = instances[-1]
    if last.status == OPEN and last.deadline_ms < t:
        fire_due(track, last, t - 1, live)
    inst = last
    if last.start_ms > t:  # a late event: find the instance of its time
        for inst in reversed(instances):
            if inst.start_ms <= t:
                break
        else:
            return
    if inst.status == OPEN or (inst.ended_ms is not None and t <= inst.ended_ms):
        inst.touches += 1
        inst.friction += friction
        if labels is not None:
            inst.signals = remember(inst.signals, labels)
        if channel not in inst.channels:
            inst.channels = inst.channels + (channel,)
        if t >= inst.last_ms:
            inst.last_channel, inst.last_touchpoint, inst.last_ms = channel, touchpoint, t
