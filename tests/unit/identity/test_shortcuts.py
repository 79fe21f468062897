"""stream_processors.identity.core.persons, identity_corrections and identity_records: the
shortcuts of the hot path give exactly what the general code gives.

- `Guards.refusal_of_one` (a person and a lone identifier, without making it a `Person`) says
  what `Guards.refusal` says of the same two, reason and detail alike;
- `Partition.whole` only makes a cluster one person at once when no merge of its parts could
  be refused (then replaying its links would join it all), and `joined_changes` gives the
  records `person_changes` gives for that;
- person and record ids, spelled out for speed, are `uuid.uuid5`'s.
"""

from __future__ import annotations

import itertools
import uuid
from operator import add

import pytest

from schemas.identity_rules import IdentityRules
from stream_processors.identity.core.corrections import joined_changes, person_changes
from stream_processors.identity.core.merge_guards import Guards, Person
from stream_processors.identity.core.persons import Partition
from stream_processors.identity.core.records import (
    PERSON_NAMESPACE,
    RECORD_NAMESPACE,
    MergeRecord,
    MoveRecord,
    RefusalRecord,
    person_id,
)
from tests.unit.identity.builders import at

RULE_SETS = (
    IdentityRules(),
    IdentityRules(caps={"device_id": 1, "anonymous_id": 2}, max_identifiers=4),
    IdentityRules(
        caps={"customer_id": 2},
        allow_customer_id_merge=True,
        priorities=(
            "device_id",
            "customer_id",
            "anonymous_id",
            "loyalty_id",
            "email_hash",
            "phone_hash",
        ),
    ),
)


def person_of(guards: Guards, counts: list[int] | tuple[int, ...]) -> Person:
    """A person holding `counts[rank]` identifiers of each type."""
    types = guards.types
    return person_with(guards, [f"{types[r]}:{i}" for r, n in enumerate(counts) for i in range(n)])


def person_with(guards: Guards, members: list[str]) -> Person:
    """The person of exactly `members`."""
    counts = [0] * len(guards.types)
    for key in members:
        counts[guards.rank[key.partition(":")[0]]] += 1
    best = min((guards.rank[key.partition(":")[0]], key) for key in members)
    return Person(person_id(best[1]), best, members, counts)


@pytest.mark.parametrize("rules", RULE_SETS)
def test_refusal_of_one_is_refusal_of_a_lone_person(rules: IdentityRules) -> None:
    guards = Guards(rules)
    size = len(guards.types)
    checked = 0
    # Persons of up to 3 of each of three types (some over a cap: made only by hand), and
    # every type of lone identifier.
    for spread in itertools.product(range(4), repeat=3):
        for types in itertools.combinations(range(size), 3):
            counts = [0] * size
            for rank, n in zip(types, spread, strict=True):
                counts[rank] = n
            if not any(counts):
                continue
            a = person_of(guards, counts)
            for rank in range(size):
                key = f"{guards.types[rank]}:lone"
                lone = Person(person_id(key), (rank, key), [key], guards.unit[rank].copy())
                expected = guards.refusal(a, lone, list(map(add, a.counts, lone.counts)))
                assert guards.refusal_of_one(a, key, rank) == expected, (counts, key)
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize("rules", RULE_SETS)
def test_a_cluster_is_one_person_at_once_only_when_no_split_of_it_is_refused(
    rules: IdentityRules,
) -> None:
    guards = Guards(rules)
    size = len(guards.types)
    wholes = 0
    for counts in itertools.product(range(3), repeat=size):
        if not 2 <= sum(counts) <= 6:
            continue
        members = person_of(guards, counts).members
        whole = Partition(guards, {key: person_id(key) for key in members}).whole(members)
        if whole is None:
            continue
        wholes += 1
        assert whole.counts == list(counts) and sorted(whole.members) == sorted(members)
        assert whole.best == min((guards.rank[k.partition(":")[0]], k) for k in members)
        # Every split into two persons may merge, so replaying its links would join it all.
        first, rest = members[0], members[1:]
        for picks in itertools.product((False, True), repeat=len(rest)):
            left = [first, *(k for k, p in zip(rest, picks, strict=True) if p)]
            right = [k for k, p in zip(rest, picks, strict=True) if not p]
            if right:
                a, b = person_with(guards, left), person_with(guards, right)
                assert guards.refusal(a, b, list(map(add, a.counts, b.counts))) is None
    assert wholes > 10


@pytest.mark.parametrize(
    "before",
    [
        {"a": "P", "b": "P"},
        {"a": "P", "b": "Q"},
        {"a": "P", "b": "P", "c": "Q", "d": "R"},
        {"a": "Q", "b": "R", "c": "R"},
        {"a": "N", "b": "Q"},
    ],
)
def test_joining_a_whole_cluster_gives_the_records_of_the_general_difference(
    before: dict[str, str],
) -> None:
    for pid in ("N", "P", "Z"):
        after = dict.fromkeys(before, pid)
        merges, moves = person_changes(before, after, "e", at(0))
        assert moves == []
        assert joined_changes(before, pid, "e", at(0)) == merges


def test_person_and_record_ids_are_uuid5() -> None:
    # Enough keys that every value of the variant digit comes up.
    for i in range(64):
        key = f"anonymous_id:a-{i}"
        assert person_id(key) == str(uuid.uuid5(PERSON_NAMESPACE, key))
    # Quotes and backslashes change how a tuple's str spells its items.
    odd = ("email_hash:it's", 'anonymous_id:"q"', "device_id:a\\b\x1f\u00e9")
    records: list[MergeRecord | MoveRecord | RefusalRecord] = [
        MergeRecord("link", "e1", at(0), ("a", "b"), ("P", "Q"), "P"),
        MoveRecord("e2", at(1), ("a",), "P", "Q"),
        RefusalRecord("cap", "e3", at(2), ("u", "v"), "d"),
        MergeRecord("correction", "e4", at(3), odd, ("P",), "Q"),
        RefusalRecord("denylist", "e5", at(4), odd[1:], "d", retracted=True),
    ]
    parts = [
        ("merge", "e1", ("a", "b"), ("P", "Q"), "P"),
        ("move", "e2", ("a",), "P", "Q"),
        ("refusal", "cap", "e3", ("u", "v")),
        ("merge", "e4", odd, ("P",), "Q"),
        ("refusal", "denylist", "e5", odd[1:]),
    ]
    for record, named in zip(records, parts, strict=True):
        name = "\x1f".join(map(str, named))
        assert record.record_id == str(uuid.uuid5(RECORD_NAMESPACE, name))
