"""Whether an event a stage reads from another stage has the shape the stage relies on.

Only Journeys stages write the topics between stages, so a malformed event there is a bug
upstream or a hand-written record; either way one event must not stop a stage, and it must
not vanish either. The stages check each event's few fields they index or parse (the ingest
stage has already validated the whole touchpoint), send the ones that fail to their
dead-letter topic with the problems named, and go on with the rest. The checks are plain
type tests, not a model validation: they run on every event of the hot path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from schemas.deadletter import FieldError
from schemas.touchpoint import IDENTIFIER_FIELDS
from schemas.vocabulary import Channel

CHANNELS = frozenset(c.value for c in Channel)
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_IDENTIFIERS = frozenset(IDENTIFIER_FIELDS)


def touchpoint_problems(event: Any) -> list[FieldError]:
    """What is wrong with a touchpoint as the identity stage forwards it (empty: nothing):
    the fields below, and an event id that is a UUID (the touchpoints table's key). Values
    are never repeated in the messages: a dead letter keeps the raw event apart."""
    problems = _event_problems(event)
    event_id = event.get("event_id") if isinstance(event, Mapping) else None
    if isinstance(event_id, str) and event_id and not _UUID.fullmatch(event_id):
        problems.append(FieldError(field="event_id", message="a UUID is required"))
    return problems


def _event_problems(event: Any) -> list[FieldError]:
    if not isinstance(event, Mapping):
        return [FieldError(field="<event>", message="an event must be a JSON object")]
    problems = []
    for name in ("event_id", "event_type"):
        value = event.get(name)
        if not isinstance(value, str) or not value:
            problems.append(FieldError(field=name, message="a non-empty string is required"))
    channel = event.get("channel")
    if not isinstance(channel, str) or channel not in CHANNELS:
        problems.append(FieldError(field="channel", message="not one of the four channels"))
    occurred = event.get("occurred_at")
    if not isinstance(occurred, str) or not _is_datetime(occurred):
        problems.append(FieldError(field="occurred_at", message="an ISO 8601 time is required"))
    identity = event.get("identity")
    if identity is not None:
        problems.extend(_identity_problems(identity))
    return problems


def link_problems(event: Any) -> list[FieldError]:
    """An event as the identity stage's router sends it to the authority (`identity-links`):
    the fields the authority decides with."""
    if not isinstance(event, Mapping):
        return [FieldError(field="<event>", message="an event must be a JSON object")]
    problems = []
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        problems.append(FieldError(field="event_id", message="a non-empty string is required"))
    occurred = event.get("occurred_at")
    if not isinstance(occurred, str) or not _is_datetime(occurred):
        problems.append(FieldError(field="occurred_at", message="an ISO 8601 time is required"))
    problems.extend(_identity_problems(event.get("identity")))
    return problems


def stitched_problems(event: Any) -> list[FieldError]:
    """A touchpoint as the identity stage stamped it: the touchpoint's shape, and a person
    id that is a string when there is one (an event without identifiers has none)."""
    problems = _event_problems(event)
    if isinstance(event, Mapping):
        person = event.get("person_id")
        if person is not None and not isinstance(person, str):
            problems.append(FieldError(field="person_id", message="must be a string"))
    return problems


def merge_problems(record: Any) -> list[FieldError]:
    """An identity record on `identity-merges` as the journeys stage applies it: a merge
    names the person kept and the persons merged into it (other kinds are counted, not
    applied)."""
    if not isinstance(record, Mapping):
        return [FieldError(field="<record>", message="a record must be a JSON object")]
    if record.get("kind") != "merge":
        return []
    problems = []
    if not isinstance(record.get("person_id"), str):
        problems.append(FieldError(field="person_id", message="a string is required"))
    olds = record.get("old_person_ids")
    if not isinstance(olds, list) or not all(isinstance(o, str) for o in olds):
        problems.append(FieldError(field="old_person_ids", message="a list of strings"))
    at = record.get("event_time")
    if at is not None and (not isinstance(at, str) or not _is_datetime(at)):
        problems.append(FieldError(field="event_time", message="an ISO 8601 time or null"))
    return problems


def transition_problems(row: Any) -> list[FieldError]:
    """A row of `journey-transitions` as the friction stage counts it."""
    return _row_problems(
        row, "transition_id", "at", ("definition_id", "to_stage", "channel", "person_id")
    )


def dropoff_problems(row: Any) -> list[FieldError]:
    """A row of `journey-dropoffs` as the friction stage counts it."""
    return _row_problems(
        row, "dropoff_id", "dropped_at", ("definition_id", "stage", "last_channel", "person_id")
    )


def _row_problems(
    row: Any, id_field: str, time_field: str, texts: tuple[str, ...]
) -> list[FieldError]:
    if not isinstance(row, Mapping):
        return [FieldError(field="<row>", message="a row must be a JSON object")]
    if row.get(id_field) is None:
        return [FieldError(field=id_field, message="required")]
    if row.get("retracted"):
        return []  # a cancelling row names only what it cancels
    problems = []
    at = row.get(time_field)
    if isinstance(at, bool) or not isinstance(at, int | float | str):
        problems.append(FieldError(field=time_field, message="epoch seconds are required"))
    else:
        try:
            float(at)
        except ValueError:
            problems.append(FieldError(field=time_field, message="epoch seconds are required"))
    problems.extend(
        FieldError(field=name, message="a string is required")
        for name in texts
        if not isinstance(row.get(name), str)
    )
    return problems


def split(
    events: list[Any], problems_of: Callable[[Any], list[FieldError]]
) -> tuple[list[Any], list[tuple[Any, list[FieldError]]]]:
    """The events that pass, in order, and each one that does not with its problems. A batch
    whose events all look right at a glance (the usual case) is returned as it is, after one
    quick pass; only a batch with a suspect event is checked field by field."""
    if problems_of in _FAST and _all_plausible(events, uuid=problems_of is touchpoint_problems):
        return events, []
    good: list[Any] = []
    bad: list[tuple[Any, list[FieldError]]] = []
    for event in events:
        found = problems_of(event)
        if found:
            bad.append((event, found))
        else:
            good.append(event)
    return good, bad


_FAST: set[Callable[[Any], list[FieldError]]] = {touchpoint_problems, stitched_problems}


def _all_plausible(events: Iterable[Any], *, uuid: bool) -> bool:
    """Every event a dict with a string id, type and person (or none), a known channel, an
    identity object (or none) and a time that parses. Identifier values are left to the full
    check only when this fails; `touchpoint_problems` is the definition, this its fast path."""
    parse, channels, uuid_form = datetime.fromisoformat, CHANNELS, _UUID.fullmatch
    try:
        for e in events:
            if (
                type(e) is not dict
                or type(e["event_id"]) is not str
                or not e["event_id"]
                or (uuid and not uuid_form(e["event_id"]))
                or type(e.get("event_type")) is not str
                or not e["event_type"]
                or e["channel"] not in channels
            ):
                return False
            identity = e.get("identity")
            if identity is not None and (
                type(identity) is not dict
                or any(type(v) is not str for v in identity.values() if v is not None)
            ):
                return False
            person = e.get("person_id")
            if person is not None and type(person) is not str:
                return False
            parse(e["occurred_at"])
    except (KeyError, TypeError, ValueError):
        return False
    return True


def _identity_problems(identity: Any) -> list[FieldError]:
    if not isinstance(identity, Mapping):
        return [FieldError(field="identity", message="must be an object")]
    return [
        FieldError(field=f"identity.{key}", message="an identifier must be a string")
        for key, value in identity.items()
        if key in _IDENTIFIERS and value is not None and not isinstance(value, str)
    ]


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
