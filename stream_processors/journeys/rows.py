"""The journey core's records as the JSON rows of their topics (and ClickHouse tables).

Times leave the core as epoch milliseconds; rows carry them as epoch seconds with a
fraction (`*_at`), which ClickHouse's JSON input reads into `DateTime64(3)` (an integer
there would be read as seconds). Durations stay in milliseconds (`*_ms`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from stream_processors.journeys.core.outputs import (
    DropOff,
    JourneyUpdate,
    Output,
    Rejected,
    Retraction,
    SessionRecord,
    StageTransition,
)


def _s(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def journey_row(r: JourneyUpdate) -> bytes:
    return orjson.dumps(
        {
            "journey_id": r.journey_id,
            "definition_id": r.definition_id,
            "definition_version": r.definition_version,
            "person_id": r.person_id,
            "status": r.status,
            "stage": r.stage,
            "started_at": r.started_ms / 1000,
            "ended_at": _s(r.ended_ms),
            "stages": [(stage, at / 1000, channel) for stage, at, channel in r.stages],
            "channels": r.channels,
            "touchpoints": r.touchpoints,
            "friction": r.friction,
            "time_to_convert_ms": r.time_to_convert_ms,
            "hold": r.hold,
            "merged_into": r.merged_into,
            "version": r.version,
        }
    )


def transition_row(r: StageTransition) -> bytes:
    return orjson.dumps(
        {
            "transition_id": r.transition_id,
            "journey_id": r.journey_id,
            "definition_id": r.definition_id,
            "definition_version": r.definition_version,
            "person_id": r.person_id,
            "from_stage": r.from_stage,
            "to_stage": r.to_stage,
            "at": r.at_ms / 1000,
            "channel": r.channel,
            "touchpoint": r.touchpoint,
            "event_id": r.event_id,
            "elapsed_ms": r.elapsed_ms,
            "version": r.version,
            "retracted": r.retracted,
            "from_channel": r.from_channel,
        }
    )


def dropoff_row(r: DropOff) -> bytes:
    return orjson.dumps(_dropoff_fields(r, r.version, None))


def dropoff_cancel_row(r: Retraction) -> bytes:
    """The row that cancels a retracted drop-off: the whole drop-off again, same key, a higher
    version, `retracted = true`, so `FROM dropoffs FINAL` keeps what it was."""
    assert r.dropoff is not None, "only a drop-off's retraction cancels a drop-off row"
    return orjson.dumps(_dropoff_fields(r.dropoff, r.version, r.reason))


def _dropoff_fields(r: DropOff, version: int, retracted_by: str | None) -> dict[str, Any]:
    return {
        "dropoff_id": r.dropoff_id,
        "journey_id": r.journey_id,
        "definition_id": r.definition_id,
        "definition_version": r.definition_version,
        "person_id": r.person_id,
        "stage": r.stage,
        "stage_entered_at": r.stage_entered_ms / 1000,
        "dropped_at": r.deadline_ms / 1000,
        "reason": r.reason,
        "failure_stage": r.failure_stage,
        "stage_channel": r.stage_channel,
        "last_channel": r.last_channel,
        "last_touchpoint": r.last_touchpoint,
        "last_event_at": r.last_event_ms / 1000,
        "friction": r.friction,
        "touchpoints": r.touchpoints,
        "channels": r.channels,
        "signals": r.signals,
        "version": version,
        "retracted": retracted_by is not None,
        "retraction_reason": retracted_by or "",
    }


def retraction_row(r: Retraction) -> bytes:
    return orjson.dumps(
        {
            "retraction_id": r.retraction_id,
            "retracted_id": r.retracted_id,
            "retracted": r.retracted,
            "journey_id": r.journey_id,
            "definition_id": r.definition_id,
            "definition_version": r.definition_version,
            "person_id": r.person_id,
            "stage": r.stage,
            "reason": r.reason,
            "event_id": r.event_id,
            "at": _s(r.at_ms),
            "version": r.version,
        }
    )


def session_row(r: SessionRecord) -> bytes:
    return orjson.dumps(
        {
            "session_id": r.session_id,
            "person_id": r.person_id,
            "channel": r.channel,
            "started_at": r.started_ms / 1000,
            "ended_at": r.ended_ms / 1000,
            "events": r.events,
            "friction": r.friction,
            "task_completed": r.task_completed,
            "first_touchpoint": r.first_touchpoint,
            "last_touchpoint": r.last_touchpoint,
            "status": r.status,
            "version": r.version,
        }
    )


class Outputs:
    """One step's records sorted into rows per output topic.

    A journey changed by several events of one step (a person's buffered events released
    together, a refold) is reported in as many versions; the table keeps only the highest
    version of each journey (ReplacingMergeTree), so only that one becomes a row. That saves
    the others' encoding here, their bytes on the topic and their rows in ClickHouse."""

    __slots__ = (
        "dropoffs",
        "journeys",
        "moved",
        "rejected",
        "retractions",
        "sessions",
        "superseded",
        "transitions",
    )

    def __init__(self) -> None:
        self.journeys: dict[str, JourneyUpdate] = {}  # the latest version of each, by id
        self.superseded = 0  # journey versions a later one of the same step replaced
        self.transitions: list[bytes] = []
        self.dropoffs: list[bytes] = []
        self.retractions: list[bytes] = []
        self.sessions: list[bytes] = []
        self.rejected = 0
        self.moved = False  # event time moved in this step

    def add(self, records: list[Output]) -> None:
        for r in records:
            _SORT[type(r)](self, r)

    def by_topic(self, names: dict[str, str]) -> list[tuple[str, list[bytes]]]:
        """(topic, rows) for every kind with rows; `names` maps kind -> topic."""
        found = []
        if self.journeys:
            found.append((names["journeys"], [journey_row(r) for r in self.journeys.values()]))
        kinds = ("transitions", "dropoffs", "retractions", "sessions")
        return found + [(names[k], rows) for k in kinds if (rows := getattr(self, k))]


def _journey(o: Outputs, r: JourneyUpdate) -> None:
    known = o.journeys.get(r.journey_id)
    if known is None:
        o.journeys[r.journey_id] = r
    else:
        o.superseded += 1
        if r.version > known.version:
            o.journeys[r.journey_id] = r


def _retraction(o: Outputs, r: Retraction) -> None:
    o.retractions.append(retraction_row(r))
    if r.dropoff is not None:
        o.dropoffs.append(dropoff_cancel_row(r))


def _rejected(o: Outputs, _r: Rejected) -> None:
    o.rejected += 1


_SORT: dict[type, Callable[[Outputs, Any], None]] = {
    JourneyUpdate: _journey,
    StageTransition: lambda o, r: o.transitions.append(transition_row(r)),
    DropOff: lambda o, r: o.dropoffs.append(dropoff_row(r)),
    Retraction: _retraction,
    SessionRecord: lambda o, r: o.sessions.append(session_row(r)),
    Rejected: _rejected,
}
