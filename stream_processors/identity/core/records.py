"""What identity stitching says: person ids, links, and the records of merges, moves and
refusals (docs/concepts.md §3).

An identifier is written as its key, `"<type>:<value>"` (the form `Identity.partition_key`
uses). A person id is the UUIDv5 of the key of the person's highest-priority identifier (then
the smallest value), so a replay of the same events gives the same ids.

Records are named tuples, as the journeys stage's are: immutable values compared by content,
and several times cheaper to make than frozen dataclasses (the authority makes one or more per
link it decides).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, NamedTuple

from stream_processors.core.uuids import namespace, uuid5

PERSON_NAMESPACE = uuid.UUID("0eb1d8a8-f687-5dd0-a222-207d3700b611")
"""uuid5(NAMESPACE_URL, "https://journeys/person"); changing it renames every person."""

RECORD_NAMESPACE = uuid.UUID("a00abe56-18c0-5ac9-91b4-c8cd05dbe46f")
"""uuid5(NAMESPACE_URL, "https://journeys/identity-record"): the namespace of record ids."""

MergeRule = Literal["link", "correction"]
RefusalRule = Literal["denylist", "customer_id_conflict", "cap"]


def person_id(key: str) -> str:
    """The person id named by identifier `key`: `str(uuid.uuid5(PERSON_NAMESPACE, key))`."""
    return uuid5(_PERSON_SHA1, key)


_PERSON_SHA1 = namespace(PERSON_NAMESPACE)
_RECORD_SHA1 = namespace(RECORD_NAMESPACE)


def _record_id(name: str) -> str:
    """`str(uuid.uuid5(RECORD_NAMESPACE, name))`, where `name` is the record's parts, each as
    `str()` spells it, joined by `\x1f`: records build it with one f-string (a tuple's `str`
    is its repr), which costs half of `"\x1f".join(map(str, parts))`."""
    return uuid5(_RECORD_SHA1, name)


class Link(NamedTuple):
    """Two identifiers seen together in one event. Tuples order as the guards decide: earliest
    event time, then smallest event id, then the linked identifier's priority and key. `u` is
    the event's anchor (its highest-priority identifier), `v` the other one."""

    event_time: datetime
    event_id: str
    rank: int
    v: str
    u: str

    @property
    def pair(self) -> tuple[str, str]:
        return (self.u, self.v)


class MergeRecord(NamedTuple):
    """Several persons became one. `rule` is `link` when an event's link joined them as it
    arrived, `correction` when a late link (earlier in event time) re-decided the graph.
    `identifiers` are the link's two identifiers (`link`) or the identifiers that changed person
    (`correction`). An old person id can be one no event carried yet: an identifier first seen
    in the triggering event is a person of its own for a moment."""

    rule: MergeRule
    event_id: str
    event_time: datetime
    identifiers: tuple[str, ...]
    old_person_ids: tuple[str, ...]
    person_id: str

    @property
    def record_id(self) -> str:
        """Deterministic id of this record, for idempotent writes downstream."""
        return _record_id(
            f"merge\x1f{self.event_id}\x1f{self.identifiers}"
            f"\x1f{self.old_person_ids}\x1f{self.person_id}"
        )


class MoveRecord(NamedTuple):
    """Some identifiers of a person left it for another (a split or a takeover), because a late
    link (earlier in event time) re-decided the graph. Their events follow them."""

    event_id: str
    event_time: datetime
    identifiers: tuple[str, ...]
    from_person_id: str
    to_person_id: str
    rule: Literal["correction"] = "correction"

    @property
    def record_id(self) -> str:
        """Deterministic id of this record, for idempotent writes downstream."""
        return _record_id(
            f"move\x1f{self.event_id}\x1f{self.identifiers}"
            f"\x1f{self.from_person_id}\x1f{self.to_person_id}"
        )


class RefusalRecord(NamedTuple):
    """A link a guard refused, or junk identifiers dropped from an event (`denylist`).

    A refusal of a link holds for the earliest event that links the pair; it is retracted
    (`retracted=True`, same `record_id`) when a late link changes the decision or an earlier
    event links the same pair."""

    rule: RefusalRule
    event_id: str
    event_time: datetime
    identifiers: tuple[str, ...]
    detail: str
    retracted: bool = False

    @property
    def record_id(self) -> str:
        """Deterministic id, shared by a refusal and its retraction."""
        return _record_id(f"refusal\x1f{self.rule}\x1f{self.event_id}\x1f{self.identifiers}")


class Resolution(NamedTuple):
    """What one event resolved to: its person (None when every identifier was junk) and the
    records the event caused."""

    person_id: str | None
    merges: tuple[MergeRecord, ...] = ()
    moves: tuple[MoveRecord, ...] = ()
    refusals: tuple[RefusalRecord, ...] = ()
