"""The guards of identity stitching: whether a link may join two persons, and if not, why.

A merge is refused when it would put two different customer ids in one person (unless the
rules allow it), break a cap on identifiers of one type (shared devices, call-center lines)
or on identifiers in all, and a junk value (`null`, `guest`, ...) never links at all. The
rules themselves are settings (`schemas/identity_rules.py`); this module prepares them for
the inner loop and gives each refusal its rule and reason. A `Person` is what they judge:
the members of a stitched person and its count of identifiers per type.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from operator import gt

from schemas.identity_rules import IdentityRules, junk_reason
from stream_processors.identity.core.records import RefusalRule


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
        # The counts per type of one identifier of each rank, to copy.
        size = len(self.types)
        self.unit = [[int(i == rank) for i in range(size)] for rank in range(size)]
        # The cap of each rank (no count reaches an uncapped one's), so that a person's counts
        # are checked in one pass in C: `any(map(gt, counts, limits))`.
        self.limits = [sys.maxsize] * size
        for rank, cap in self.caps:
            self.limits[rank] = cap
        self._junk, self._pattern = rules.junk_test()

    def junk_reason(self, value: str) -> str | None:
        """`IdentityRules.junk_reason`, without pydantic's attribute lookups."""
        return junk_reason(value, self._junk, self._pattern)

    def too_many(self, counts: list[int], size: int) -> bool:
        """Whether one person of `size` identifiers with these counts per type breaks a
        guard (two customer ids, a cap)."""
        if self.customer_guard and counts[self.customer] > 1:
            return True
        if any(map(gt, counts, self.limits)):
            return True
        return self.max_identifiers is not None and size > self.max_identifiers

    def refusal(self, a: Person, b: Person, counts: list[int]) -> tuple[RefusalRule, str] | None:
        """Why persons `a` and `b` may not become one, or None when they may; `counts` is the
        sum of theirs."""
        customer = self.customer
        if self.customer_guard and a.counts[customer] and b.counts[customer]:
            first, second = sorted((_customer_of(a), _customer_of(b)))
            return "customer_id_conflict", f"{first} and {second} are different customers"
        if any(map(gt, counts, self.limits)):
            for rank, cap in self.caps:
                if counts[rank] > cap:
                    held = f"{a.counts[rank]} + {b.counts[rank]}"
                    return "cap", f"{self.types[rank]}: {held} > cap {cap}"
        total = self.max_identifiers
        if total is not None and len(a.members) + len(b.members) > total:
            return "cap", f"identifiers: {len(a.members)} + {len(b.members)} > cap {total}"
        return None

    def refusal_of_one(self, a: Person, key: str, rank: int) -> tuple[RefusalRule, str] | None:
        """`refusal(a, b, ...)` where `b` is the lone identifier `key` of rank `rank`, without
        making it a `Person`: the same checks in the same order, with its counts (one of its
        type) spelled out."""
        counts = a.counts
        if self.customer_guard and rank == self.customer and counts[rank]:
            first, second = sorted((_customer_of(a), key))
            return "customer_id_conflict", f"{first} and {second} are different customers"
        limit = self.limits[rank]
        if counts[rank] + 1 > limit or any(map(gt, counts, self.limits)):
            for capped, cap in self.caps:
                mine = int(capped == rank)
                if counts[capped] + mine > cap:
                    return "cap", f"{self.types[capped]}: {counts[capped]} + {mine} > cap {cap}"
        total = self.max_identifiers
        if total is not None and len(a.members) + 1 > total:
            return "cap", f"identifiers: {len(a.members)} + 1 > cap {total}"
        return None


def _customer_of(person: Person) -> str:
    return min(key for key in person.members if key.startswith("customer_id:"))
