"""Records for fold steps taken as events arrive in order: the live `Effects` of the core.

Every instance changed by one event (or one watermark sweep) is reported once, after the
step, as one new `JourneyUpdate` version; transitions, drop-offs and retractions of a
reopened drop-off are reported as they happen.
"""

from __future__ import annotations

from stream_processors.journeys.core.lifecycle import Effects
from stream_processors.journeys.core.match import Hit
from stream_processors.journeys.core.outputs import (
    Output,
    journey_update,
    report_dropoff,
    retraction,
    transition,
)
from stream_processors.journeys.core.signals import remember
from stream_processors.journeys.core.state import DROPPED, Instance, Track


class LiveEffects(Effects):
    """Collects the records of in-order fold steps into `out`; `flush()` ends a step."""

    __slots__ = ("changed", "friction", "labels", "out")

    def __init__(self) -> None:
        self.out: list[Output] = []
        self.changed: list[tuple[Track, Instance]] = []
        self.friction = 0  # of the event being applied: counted by the instance it starts
        self.labels: tuple[str, ...] | None = None  # its signal labels, remembered likewise

    def _bump(self, track: Track, inst: Instance) -> None:
        changed = self.changed
        if changed:
            for _, known in changed:
                if known is inst:
                    return
        inst.version += 1
        changed.append((track, inst))

    def started(self, track: Track, inst: Instance) -> None:
        inst.friction += self.friction
        if self.labels is not None:
            inst.signals = remember(inst.signals, self.labels)
        self._bump(track, inst)
        self.out.append(transition(track, inst, inst.reached[0], None))

    def advanced(self, track: Track, inst: Instance, previous: Hit) -> None:
        self._bump(track, inst)
        self.out.append(transition(track, inst, inst.reached[-1], previous))

    def ended(self, track: Track, inst: Instance) -> None:
        self._bump(track, inst)
        if inst.status == DROPPED:
            self.out.append(report_dropoff(track, inst))

    def reopened(self, track: Track, inst: Instance, hit: Hit) -> None:
        self.out.append(retraction(track, inst, "reopened", hit))
        inst.reported = None
        self._bump(track, inst)
        # The returning event was not tallied: the instance was closed when it was counted.
        inst.touches += 1
        inst.friction += self.friction
        if self.labels is not None:
            inst.signals = remember(inst.signals, self.labels)
        if hit[3] not in inst.channels:
            inst.channels = inst.channels + (hit[3],)
        inst.last_channel, inst.last_touchpoint, inst.last_ms = hit[3], hit[4], hit[0]

    def flush(self) -> None:
        """Report every instance changed since the last flush."""
        if self.changed:
            out = self.out
            for track, inst in self.changed:
                out.append(journey_update(track, inst))
            self.changed.clear()
