"""Persons as a partition of identifiers; whether a link may join two of them is decided by
the guards (`merge_guards.py`).

`Partition` maps every identifier key to its person's id; persons of two or more identifiers
also have a `Person` with their members and a count per identifier type. A lone identifier's
person is implicit, so registering one costs a dict entry. Ids are person ids in the graph, and
the naming identifier's key while a cluster is replayed.
`replay` decides a set of links in order, Kruskal-like: that order, not arrival, is what makes
the outcome a function of the set of links.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import add

from stream_processors.identity.core.merge_guards import Guards, Person
from stream_processors.identity.core.records import Link, MergeRecord, RefusalRecord

_new_tuple = tuple.__new__


def type_of(key: str) -> str:
    """The identifier type of key `"<type>:<value>"`."""
    return key.partition(":")[0]


class Partition:
    """Identifier key -> person id, with the persons of two or more identifiers."""

    def __init__(self, guards: Guards, ids: dict[str, str] | None = None) -> None:
        self.guards = guards
        self.ids: dict[str, str] = {} if ids is None else ids
        self.persons: dict[str, Person] = {}
        # When a list: merges add the identifiers whose person they changed (the graph's
        # partition; a replayed cluster's needs not).
        self.changed: list[str] | None = None

    def apply(self, link: Link) -> MergeRecord | RefusalRecord | None:
        """Decide one link: merge the two persons, refuse with a guard's reason, or nothing
        when both identifiers already are one person."""
        time, event_id, rank, v, u = link
        ids, persons, guards = self.ids, self.persons, self.guards
        pu, pv = ids[u], ids[v]
        if pu == pv:
            return None
        a = persons.get(pu)
        if a is None:
            u_rank = guards.rank[type_of(u)]
            a = Person(pu, (u_rank, u), [u], guards.unit[u_rank].copy())
        b = persons.get(pv)
        if b is None:  # the common case, a new identifier: no `Person` is made for it
            refused = guards.refusal_of_one(a, v, rank)
        else:
            counts = list(map(add, a.counts, b.counts))
            refused = guards.refusal(a, b, counts)
        if refused is not None:
            return RefusalRecord(refused[0], event_id, time, (u, v), refused[1])
        pid = self._add(a, v, rank, pv) if b is None else self.merge(a, b, counts).id
        old = (pu, pv) if pu < pv else (pv, pu)
        # `MergeRecord("link", ...)` without its `__new__`'s keyword handling: once per link.
        return _new_tuple(MergeRecord, ("link", event_id, time, (u, v), old, pid))

    def _add(self, a: Person, key: str, rank: int, pid: str) -> str:
        """`merge` of person `a` and the lone identifier `key` (of rank `rank`, person `pid`),
        without making that one a `Person`; the merged person's id."""
        ids, changed = self.ids, self.changed
        if (rank, key) < a.best:
            for member in a.members:
                ids[member] = pid
            if changed is not None:
                changed.extend(a.members)
            self.persons.pop(a.id, None)
            a.id, a.best = pid, (rank, key)
        else:
            ids[key] = a.id
            if changed is not None:
                changed.append(key)
        a.members.append(key)
        a.counts[rank] += 1
        self.persons[a.id] = a
        return a.id

    def merge(self, a: Person, b: Person, counts: list[int]) -> Person:
        """Join two persons (`counts`: the sum of theirs); the one whose best identifier wins
        gives the id."""
        winner, loser = (a, b) if a.best < b.best else (b, a)
        ids, wid = self.ids, winner.id
        for key in loser.members:
            ids[key] = wid
        if self.changed is not None:
            self.changed.extend(loser.members)
        persons = self.persons
        persons.pop(loser.id, None)
        base, other = (a, b) if len(a.members) >= len(b.members) else (b, a)
        base.members.extend(other.members)
        base.counts = counts
        base.id, base.best = wid, winner.best
        persons[wid] = base
        return base

    def best_of(self, key: str) -> str:
        """The identifier that names the person of `key`."""
        found = self.persons.get(self.ids[key])
        return key if found is None else found.best[1]

    def whole(self, members: list[str]) -> Person | None:
        """`members` as one person when the guards let them be one, else None. Then no guard
        can refuse any merge of parts of them either: counts only grow as persons merge. The
        id is left to the caller (it is the best identifier's, once derived)."""
        person = self._person_of(members, "")
        return None if self.guards.too_many(person.counts, len(members)) else person

    def install(self, person_members: Iterable[list[str]]) -> None:
        """Rebuild persons from their member lists (state import)."""
        for members in person_members:
            pid = self.ids[members[0]]
            self.persons[pid] = self._person_of(members, pid)

    def _person_of(self, members: list[str], pid: str) -> Person:
        rank = self.guards.rank
        counts = [0] * len(self.guards.types)
        ranked = [(rank[key[: key.index(":")]], key) for key in members]
        for r, _ in ranked:
            counts[r] += 1
        return Person(pid, min(ranked), list(members), counts)


def replay(partition: Partition, links: Iterable[Link]) -> dict[tuple[str, str], RefusalRecord]:
    """Apply `links` (sorted) to `partition`; return the refusals by identifier pair."""
    refusals: dict[tuple[str, str], RefusalRecord] = {}
    for link in links:
        outcome = partition.apply(link)
        if isinstance(outcome, RefusalRecord):
            refusals[link.pair] = outcome
    return refusals
