"""Who an access or erasure request is about: the person an identifier (or a person id) names
through the identity graph as ClickHouse holds it, the persons merged into them, and the
identifier keys that belong to them.

An identifier seen on one of their events belongs to them only if the graph says so (its
override names them, or it names one of them itself): a shared device the merge guards kept
apart stays with its other owners, and erasing this person never suppresses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from stream_processors.identity.core.records import person_id

# The fields of touchpoints.identity, in the tuple's order.
IDENTITY_TUPLE = (
    "customer_id",
    "anonymous_id",
    "device_id",
    "email_hash",
    "phone_hash",
    "loyalty_id",
)


@dataclass(frozen=True)
class Scope:
    """The persons (merged ones included) and identifier keys a request covers."""

    subject: str
    persons: tuple[str, ...]
    identifiers: tuple[str, ...]


def owned(candidates: Iterable[str], overrides: Mapping[str, str], persons: set[str]) -> list[str]:
    """The identifier keys among `candidates` whose owner (the override's person, else the
    person the key names itself) is one of `persons`. Pure."""
    return sorted({k for k in candidates if overrides.get(k, person_id(k)) in persons})


def merged_closure(start: str, merges: Iterable[tuple[str, list[str]]]) -> set[str]:
    """`start` and every person merged into it, directly or through another. Pure."""
    into: dict[str, set[str]] = {}
    for survivor, olds in merges:
        into.setdefault(survivor, set()).update(olds)
    found, todo = {start}, [start]
    while todo:
        for old in into.get(todo.pop(), ()):
            if old not in found:
                found.add(old)
                todo.append(old)
    return found


def identity_keys(identity: Any) -> list[str]:
    """`type:value` keys of a touchpoint's identity tuple (a dict or a tuple in field order)."""
    if isinstance(identity, Mapping):
        pairs = list(identity.items())
    else:
        pairs = list(zip(IDENTITY_TUPLE, identity or (), strict=False))
    return [f"{name}:{value}" for name, value in pairs if value]


def resolve(client: Client, subject: str) -> Scope:
    """The scope of `subject` (`TYPE:VALUE` or a person id) from ClickHouse."""
    overrides = _overrides(client)
    start = overrides.get(subject, person_id(subject)) if ":" in subject else subject
    merges = client.query(
        "SELECT person_id, old_person_ids FROM identity_audit FINAL "
        "WHERE kind != 'refusal' AND NOT retracted"
    ).result_rows
    persons = merged_closure(start, [(p, list(olds)) for p, olds in merges])
    candidates = {subject} if ":" in subject else set()
    candidates |= {k for k, p in overrides.items() if p in persons}
    seen = client.query(
        "SELECT DISTINCT identity FROM touchpoints WHERE person_id IN {p:Array(String)} "
        "UNION DISTINCT SELECT DISTINCT identity FROM identity_links "
        "WHERE person_id IN {p:Array(String)}",
        parameters={"p": sorted(persons)},
    ).result_rows
    for (identity,) in seen:
        candidates.update(identity_keys(identity))
    return Scope(subject, tuple(sorted(persons)), tuple(owned(candidates, overrides, persons)))


def _overrides(client: Client) -> dict[str, str]:
    """identifier -> person, for every identifier whose latest override remaps it."""
    rows = client.query(
        "SELECT identifier, argMax(person_id, version), argMax(remapped, version) "
        "FROM identity_overrides GROUP BY identifier"
    ).result_rows
    return {key: person for key, person, remapped in rows if remapped}
