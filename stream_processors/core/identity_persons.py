"""Persons as a partition of identifiers, and the guards that decide whether a link may join
two of them.

`Partition` maps every identifier key to its person's id; persons of two or more identifiers
also have a `Person` with their members and a count per identifier type. A lone identifier's
person is implicit, so registering one costs a dict entry. Ids are person ids in the graph, and
the naming identifier's key while a cluster is replayed.
`replay` decides a set of links in order, Kruskal-like: that order, not arrival, is what makes
the outcome a function of the set of links.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from operator import add

from .identity_records import Link, MergeRecord, RefusalRecord, RefusalRule
from .identity_rules import IdentityRules, junk_reason


def type_of(key: str) -> str:
    """The identifier type of key `"<type>:<value>"`."""
    return key.partition(":")[0]


@dataclass(slots=True)
class Person:
    """Two or more identifiers stitched together. `best` is the identifier that names it."""

    id: str
    best: tuple[int, str]
    members: list[str]
    counts: list[int]


class Guards:
    """The rules, prepared for the inner loop: ranks by type, caps by rank."""

    def __init__(self, rules: IdentityRules) -> None:
        self.rules = rules
        self.rank = rules.rank()
        self.types = rules.priorities
        self.customer = self.rank["customer_id"]
        self.customer_guard = not rules.allow_customer_id_merge
        self.caps = [(self.rank[name], cap) for name, cap in rules.caps.items()]
        self.caps.sort()
        self.max_identifiers = rules.max_identifiers
        self._junk, self._pattern = rules.junk_test()

    def junk_reason(self, value: str) -> str | None:
        """`IdentityRules.junk_reason`, without pydantic's attribute lookups."""
        return junk_reason(value, self._junk, self._pattern)

    def refusal(self, a: Person, b: Person) -> tuple[RefusalRule, str] | None:
        """Why persons `a` and `b` may not become one, or None when they may."""
        if self.customer_guard and a.counts[self.customer] and b.counts[self.customer]:
            first, second = sorted((_customer_of(a), _customer_of(b)))
            return "customer_id_conflict", f"{first} and {second} are different customers"
        for rank, cap in self.caps:
            if a.counts[rank] + b.counts[rank] > cap:
                held = f"{a.counts[rank]} + {b.counts[rank]}"
                return "cap", f"{self.types[rank]}: {held} > cap {cap}"
        total = self.max_identifiers
        if total is not None and len(a.members) + len(b.members) > total:
            return "cap", f"identifiers: {len(a.members)} + {len(b.members)} > cap {total}"
        return None


def _customer_of(person: Person) -> str:
    return min(key for key in person.members if key.startswith("customer_id:"))


class Partition:
    """Identifier key -> person id, with the persons of two or more identifiers."""

    def __init__(self, guards: Guards, ids: dict[str, str] | None = None) -> None:
        self.guards = guards
        self.ids: dict[str, str] = {} if ids is None else ids
        self.persons: dict[str, Person] = {}

    def person(self, key: str) -> Person:
        """The person holding `key` (a fresh `Person` for a lone identifier)."""
        pid = self.ids[key]
        found = self.persons.get(pid)
        if found is not None:
            return found
        rank = self.guards.rank[type_of(key)]
        counts = [0] * len(self.guards.types)
        counts[rank] = 1
        return Person(pid, (rank, key), [key], counts)

    def apply(self, link: Link) -> MergeRecord | RefusalRecord | None:
        """Decide one link: merge the two persons, refuse with a guard's reason, or nothing
        when both identifiers already are one person."""
        pu, pv = self.ids[link.u], self.ids[link.v]
        if pu == pv:
            return None
        a, b = self.person(link.u), self.person(link.v)
        refused = self.guards.refusal(a, b)
        if refused is not None:
            rule, detail = refused
            return RefusalRecord(rule, link.event_id, link.event_time, link.pair, detail)
        merged = self.merge(a, b)
        old = (pu, pv) if pu < pv else (pv, pu)
        return MergeRecord("link", link.event_id, link.event_time, link.pair, old, merged.id)

    def merge(self, a: Person, b: Person) -> Person:
        """Join two persons; the one whose best identifier wins gives the id."""
        winner, loser = (a, b) if a.best < b.best else (b, a)
        for key in loser.members:
            self.ids[key] = winner.id
        self.persons.pop(loser.id, None)
        base, other = (a, b) if len(a.members) >= len(b.members) else (b, a)
        base.members.extend(other.members)
        base.counts = list(map(add, base.counts, other.counts))
        base.id, base.best = winner.id, winner.best
        self.persons[base.id] = base
        return base

    def best_of(self, key: str) -> str:
        """The identifier that names the person of `key`."""
        found = self.persons.get(self.ids[key])
        return key if found is None else found.best[1]

    def install(self, person_members: Iterable[list[str]]) -> None:
        """Rebuild persons from their member lists (state import)."""
        for members in person_members:
            self.persons[self.ids[members[0]]] = self._person_of(members)

    def _person_of(self, members: list[str]) -> Person:
        rank = self.guards.rank
        counts = [0] * len(self.guards.types)
        for key in members:
            counts[rank[type_of(key)]] += 1
        best = min((rank[type_of(key)], key) for key in members)
        return Person(self.ids[members[0]], best, list(members), counts)


def replay(partition: Partition, links: Iterable[Link]) -> dict[tuple[str, str], RefusalRecord]:
    """Apply `links` (sorted) to `partition`; return the refusals by identifier pair."""
    refusals: dict[tuple[str, str], RefusalRecord] = {}
    for link in links:
        outcome = partition.apply(link)
        if isinstance(outcome, RefusalRecord):
            refusals[link.pair] = outcome
    return refusals
