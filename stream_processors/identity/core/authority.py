"""The identity authority: the one place that decides links (docs/stages/identity.md).

It wraps `IdentityGraph` with what the streaming stage needs around it:
- the map it publishes, only the identifiers whose person is not the one they name (the
  "remapped" ones), as updates whenever a merge or move changes an identifier's person;
- the links to persist: the graph is a function of the earliest link of every identifier
  pair, so that set, replayed in any order (`Authority.rebuild`), restores the same graph.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from schemas.identity_rules import IdentityRules
from stream_processors.identity.core.graph import IdentityGraph
from stream_processors.identity.core.persons import type_of
from stream_processors.identity.core.records import (
    Link,
    MergeRecord,
    MoveRecord,
    RefusalRecord,
    Resolution,
    person_id,
)

_new_tuple = tuple.__new__  # a named tuple without its `__new__`'s keyword handling


class MapUpdate(NamedTuple):
    """Identifier `key` now belongs to `person_id`; `remapped` is False when that is the
    person the identifier names itself (it left a merged person: a split). A tuple, as
    `Decision`: one or more per link event, and a tuple is the cheapest to make."""

    key: str
    person_id: str
    remapped: bool


class Decision(NamedTuple):
    """What one event with several (or junk) identifiers changed."""

    resolution: Resolution
    updates: tuple[MapUpdate, ...]
    links: tuple[Link, ...]  # the links to persist (earliest of their pair so far)


class Authority:
    """The identity graph with its published map of remapped identifiers."""

    def __init__(self, rules: IdentityRules) -> None:
        self.rules = rules
        self.graph = IdentityGraph(rules)
        self.remapped: dict[str, str] = {}

    def decide(
        self, identifiers: Mapping[str, str | None], event_time: datetime, event_id: str
    ) -> Decision:
        """Decide one event's links. Costs what the event changed, not the size of the
        persons it touched: only the identifiers that moved are looked at for the map."""
        graph = self.graph
        resolution = graph.observe(identifiers, event_time, event_id)
        recorded = graph.recorded
        links = tuple(recorded)
        recorded.clear()
        if resolution.merges or resolution.moves:
            return _new_tuple(Decision, (resolution, self._updates(), links))
        return _new_tuple(Decision, (resolution, (), links))

    def _updates(self) -> tuple[MapUpdate, ...]:
        """The map updates of the identifiers the event moved: no other one's entry changes."""
        remapped = self.remapped
        out: list[MapUpdate] = []
        for key, pid, names_it in self.graph.moved():
            if names_it:
                if remapped.pop(key, None) is not None:
                    out.append(_new_tuple(MapUpdate, (key, pid, False)))
            elif remapped.get(key) != pid:
                remapped[key] = pid
                out.append(_new_tuple(MapUpdate, (key, pid, True)))
        return tuple(out)

    @classmethod
    def rebuild(cls, rules: IdentityRules, links: Iterable[Link]) -> Authority:
        """The authority whose graph holds exactly `links` (as persisted by `decide`). Links
        are replayed in their own order, so each is decided as it comes (no corrections)."""
        authority = cls(rules)
        graph = authority.graph
        for link in sorted(links):
            u_type, v_type = type_of(link.u), type_of(link.v)
            ids = {u_type: link.u[len(u_type) + 1 :], v_type: link.v[len(v_type) + 1 :]}
            graph.observe(ids, link.event_time, link.event_id)
        graph.take_recorded()
        for pid, keys in graph.persons().items():
            for key in keys:
                if person_id(key) != pid:
                    authority.remapped[key] = pid
        return authority


def link_record(link: Link) -> list[Any]:
    """A link as persisted: `[event time, event id]` under the key `link_key(link)`. The time
    keeps its microseconds: links are ordered by it, and a coarser time could reorder them."""
    return [link.event_time.isoformat(), link.event_id]


def link_key(link: Link) -> str:
    return f"{link.u}\x1f{link.v}"


def link_from(key: str, record: list[Any], rules: IdentityRules) -> Link:
    """The link `link_record` and `link_key` wrote."""
    u, _, v = key.partition("\x1f")
    return Link(datetime.fromisoformat(record[0]), record[1], rules.rank()[type_of(v)], v, u)


def record_row(
    record: MergeRecord | MoveRecord | RefusalRecord, version: int, person: str | None
) -> dict[str, Any]:
    """An audit row for ClickHouse's `identity_audit` (and `journeys identity show`); one per
    record the authority makes, so built in one go, for JSON: its arrays are tuples."""
    old: tuple[str, ...]
    if isinstance(record, MergeRecord):
        kind, pid, old, detail = "merge", record.person_id, record.old_person_ids, ""
        retracted = False
    elif isinstance(record, MoveRecord):
        kind, pid, old, detail = "move", record.to_person_id, (record.from_person_id,), ""
        retracted = False
    else:
        kind, pid, old, detail = "refusal", person or "", (), record.detail
        retracted = record.retracted
    return {
        "record_id": record.record_id,
        "event_id": record.event_id,
        "event_time": record.event_time.isoformat(),
        "identifiers": record.identifiers,
        "version": version,
        "kind": kind,
        "rule": record.rule,
        "person_id": pid,
        "old_person_ids": old,
        "detail": detail,
        "retracted": retracted,
    }
