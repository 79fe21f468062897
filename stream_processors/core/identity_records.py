"""What identity stitching says: person ids, links, and the records of merges, moves and
refusals (domain.md §3).

An identifier is written as its key, `"<type>:<value>"` (the form `Identity.partition_key`
uses). A person id is the UUIDv5 of the key of the person's highest-priority identifier (then
the smallest value), so a replay of the same events gives the same ids.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

PERSON_NAMESPACE = uuid.UUID("0eb1d8a8-f687-5dd0-a222-207d3700b611")
"""uuid5(NAMESPACE_URL, "https://journeys/person"); changing it renames every person."""

RECORD_NAMESPACE = uuid.UUID("a00abe56-18c0-5ac9-91b4-c8cd05dbe46f")
"""uuid5(NAMESPACE_URL, "https://journeys/identity-record"): the namespace of record ids."""

_PERSON_NS = PERSON_NAMESPACE.bytes

MergeRule = Literal["link", "correction"]
RefusalRule = Literal["denylist", "customer_id_conflict", "cap"]


def person_id(key: str) -> str:
    """The person id named by identifier `key`: `str(uuid.uuid5(PERSON_NAMESPACE, key))`,
    spelled out because this runs once per new identifier and `uuid.UUID` costs twice as much."""
    return _uuid5(_PERSON_NS, key)


def _uuid5(namespace: bytes, name: str) -> str:
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_RECORD_NS = RECORD_NAMESPACE.bytes


def _record_id(*parts: object) -> str:
    """`str(uuid.uuid5(RECORD_NAMESPACE, parts joined))`, spelled out for speed."""
    return _uuid5(_RECORD_NS, "\x1f".join(map(str, parts)))


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


@dataclass(frozen=True, slots=True)
class MergeRecord:
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
        return _record_id("merge", self.event_id, self.identifiers, self.old_person_ids,
                          self.person_id)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MoveRecord:
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
        return _record_id("move", self.event_id, self.identifiers, self.from_person_id,
                          self.to_person_id)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RefusalRecord:
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
        return _record_id("refusal", self.rule, self.event_id, self.identifiers)


class Resolution(NamedTuple):
    """What one event resolved to: its person (None when every identifier was junk) and the
    records the event caused."""

    person_id: str | None
    merges: tuple[MergeRecord, ...] = ()
    moves: tuple[MoveRecord, ...] = ()
    refusals: tuple[RefusalRecord, ...] = ()
