"""What the journey core emits: plain immutable records, one kind per output topic.

Every record has a deterministic id. Journeys and stage transitions are versioned snapshots
(the latest version per id wins, as in a ReplacingMergeTree); drop-offs are facts that a
`Retraction` cancels. Times are epoch milliseconds, event time. `KIND` names each record's
kind for the stage that sends them; `record._asdict()` is its JSON-ready form.

Named tuples rather than frozen dataclasses: they are as immutable and typed, and build in a
sixth of the time (a frozen dataclass sets each field through `object.__setattr__`), which
matters at one or two records per event. The builders below make them with `tuple.__new__`
(what the generated `__new__` calls, without its Python frame: less than half the cost), so
they list every field, in order; a unit test checks each record's length.
"""

from __future__ import annotations

from typing import NamedTuple

from stream_processors.journeys.core.match import Hit
from stream_processors.journeys.core.state import CONVERTED, DROPPED, STATUS, Instance, Track

StageReached = tuple[str, int, str]  # (stage, reached at ms, channel)
_new = tuple.__new__


class JourneyUpdate(NamedTuple):
    """A journey instance as it stands now; `version` grows with every change."""

    journey_id: str
    definition_id: str
    definition_version: int
    person_id: str
    status: str  # open | converted | dropped_off | expired | merged
    stage: str
    started_ms: int
    ended_ms: int | None
    stages: tuple[StageReached, ...]
    channels: tuple[str, ...]
    touchpoints: int
    friction: int
    time_to_convert_ms: int | None
    hold: str | None
    merged_into: str | None
    version: int


class StageTransition(NamedTuple):
    """A journey reached `to_stage`. `retracted` versions cancel one a later fold undid."""

    transition_id: str
    journey_id: str
    definition_id: str
    definition_version: int
    person_id: str
    from_stage: str | None
    to_stage: str
    at_ms: int
    channel: str
    touchpoint: str | None
    event_id: str
    elapsed_ms: int | None  # since the previous stage was reached
    version: int
    retracted: bool = False
    # The channel of the event that reached `from_stage` (its stage_channel): the friction
    # stage counts the progression there, where the stage's entry was counted.
    from_channel: str | None = None


class DropOff(NamedTuple):
    """A journey dropped off: its time limit passed at `stage` (`deadline_ms`) without
    progress, or a failure stage was reached. Reported once; a `Retraction` cancels it."""

    dropoff_id: str
    journey_id: str
    definition_id: str
    definition_version: int
    person_id: str
    stage: str
    stage_entered_ms: int
    deadline_ms: int
    reason: str  # time_limit | failure
    failure_stage: str | None
    last_channel: str
    last_touchpoint: str | None
    last_event_ms: int
    friction: int
    touchpoints: int
    channels: tuple[str, ...]
    version: int  # of the journey when it dropped off; its retraction's is higher
    # The distinct friction signals the journey met, the most recent last (labels of
    # `journey_signals`: `payment_declined@web:/checkout`); at most 8.
    signals: tuple[str, ...] = ()
    # The channel of the event that reached `stage` (`last_channel` is the journey's last).
    stage_channel: str = ""


class Retraction(NamedTuple):
    """A correction: an outcome reported earlier no longer holds. `reason` is `late_event`
    (progress that arrived after the outcome but happened before it), `reopened` (the
    customer came back within the reopen window) or `merged` (the journey turned out to be
    part of another one)."""

    retraction_id: str
    retracted_id: str  # the DropOff's id, or the outcome id of a conversion or expiry
    retracted: str  # dropped_off | expired | converted
    journey_id: str
    definition_id: str
    definition_version: int
    person_id: str
    stage: str
    reason: str
    event_id: str | None
    at_ms: int | None
    # Higher than the retracted record's version (the journey's version then), and lower
    # than any later report of the same outcome: the latest version per outcome id tells
    # whether it stands.
    version: int
    # The retracted drop-off as it stood (None for other outcomes): its row is written again
    # whole with `retracted = true`, so the latest version of a drop-off keeps its facts.
    dropoff: DropOff | None = None


class SessionRecord(NamedTuple):
    """A UX session of one channel: `open` while it may still grow (reported at most once
    per report interval), `closed` once its gap passed, or `merged` when its events now
    count in another session (an identity merge, or an earlier event that changed its first
    event and so its id). The latest `version` per id wins."""

    session_id: str
    person_id: str
    channel: str
    started_ms: int
    ended_ms: int
    events: int
    friction: int
    task_completed: bool
    first_touchpoint: str | None
    last_touchpoint: str | None
    status: str  # open | closed | merged
    version: int


class Rejected(NamedTuple):
    """An event too far behind the watermark to change journeys any more."""

    event_id: str
    person_id: str
    occurred_ms: int
    watermark_ms: int
    reason: str


Output = JourneyUpdate | StageTransition | DropOff | Retraction | SessionRecord | Rejected
KIND: dict[type, str] = {
    JourneyUpdate: "journey",
    StageTransition: "transition",
    DropOff: "dropoff",
    Retraction: "retraction",
    SessionRecord: "session",
    Rejected: "rejected",
}


def outcome_id(track: Track, inst: Instance) -> str:
    """The id of an instance's current outcome (a drop-off's id for drop-offs). A drop-off by
    a failure stage names it: a late failure event exactly at a passed time limit turns that
    drop-off into another one at the same stage and time, and the retraction of the first
    must not cancel the second."""
    stages = track.definition.stages
    status = STATUS[inst.status]
    oid = f"{inst.id}/{status}/{stages[inst.stage]}/{inst.ended_ms}"
    return oid if inst.failure < 0 else f"{oid}/{stages[inst.failure]}"


def journey_update(track: Track, inst: Instance) -> JourneyUpdate:
    """The snapshot record of an instance (its version must already be bumped)."""
    d = track.definition
    names = d.stages
    steps = []  # a loop, not a comprehension: no closure over `names` per record
    for h in inst.reached:
        steps.append((names[h[2]], h[0], h[3]))
    ended = inst.ended_ms
    converted = inst.status == CONVERTED
    return _new(
        JourneyUpdate,
        (
            inst.id,
            d.id,
            d.version,
            track.person,
            STATUS[inst.status],
            names[inst.stage],
            inst.start_ms,
            ended,
            tuple(steps),
            inst.channels,
            inst.touches,
            inst.friction,
            ended - inst.start_ms if converted and ended is not None else None,
            track.hold,
            inst.merged_into,
            inst.version,
        ),
    )


def transition(
    track: Track, inst: Instance, hit: Hit, previous: Hit | None, retracted: bool = False
) -> StageTransition:
    """The record of `hit` moving `inst` on from `previous` (None at the start)."""
    d = track.definition
    stage = d.stages[hit[2]]
    return _new(
        StageTransition,
        (
            f"{inst.id}/{stage}",
            inst.id,
            d.id,
            d.version,
            track.person,
            d.stages[previous[2]] if previous is not None else None,
            stage,
            hit[0],
            hit[3],
            hit[4],
            hit[1],
            hit[0] - previous[0] if previous is not None else None,
            inst.version,
            retracted,
            previous[3] if previous is not None else None,
        ),
    )


def dropoff(track: Track, inst: Instance) -> DropOff:
    """The record of an instance that just dropped off."""
    assert inst.status == DROPPED and inst.ended_ms is not None
    d = track.definition
    failed = inst.failure >= 0
    return _new(
        DropOff,
        (
            outcome_id(track, inst),
            inst.id,
            d.id,
            d.version,
            track.person,
            d.stages[inst.stage],
            inst.stage_ms,
            inst.ended_ms,
            "failure" if failed else "time_limit",
            d.stages[inst.failure] if failed else None,
            inst.last_channel,
            inst.last_touchpoint,
            inst.last_ms,
            inst.friction,
            inst.touches,
            inst.channels,
            inst.version,
            inst.signals or (),
            inst.reached[-1][3],
        ),
    )


def report_dropoff(track: Track, inst: Instance) -> DropOff:
    """`dropoff(track, inst)`, kept on the instance while it stands (for its retraction)."""
    record = dropoff(track, inst)
    inst.reported = record
    return record


def reported_dropoff(track: Track, inst: Instance) -> DropOff:
    """The drop-off `inst` was reported with. State restored from a snapshot written before
    instances kept it lacks it: then it is rebuilt from the instance as it stands now."""
    kept = inst.reported
    if kept is None:
        return dropoff(track, inst)
    return kept if type(kept) is DropOff else DropOff._make(kept)


def retraction(track: Track, old: Instance, reason: str, hit: Hit | None) -> Retraction:
    """The correction of `old`'s outcome (`old` as it was when the outcome was reported)."""
    d = track.definition
    retracted = outcome_id(track, old)
    withdrawn = reported_dropoff(track, old) if old.status == DROPPED else None
    return _new(
        Retraction,
        (
            f"{retracted}/retracted/{old.version}",
            retracted,
            STATUS[old.status],
            old.id,
            d.id,
            d.version,
            track.person,
            d.stages[old.stage],
            reason,
            hit[1] if hit is not None else None,
            hit[0] if hit is not None else None,
            old.version + 1,
            withdrawn,
        ),
    )
