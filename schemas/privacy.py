"""Privacy records: what an erasure leaves behind, and the list that keeps a person erased.

An erased person's identifier keys (`email_hash:dev:9f..`, `customer_id:c-42`) and person ids
(`person:<uuid>`) are kept only as keyed hashes (`<key id>:<hex>`, the HMAC of
`producers/pii.py`), in the compacted `privacy-suppressions` topic and ClickHouse's
`privacy_suppressions`. The ingest stage and the sink drop any later event or row that names
one of them. The audit record says who asked, when and how much was removed, and holds no
erased value: the subject appears as its hash only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

PERSON_PREFIX = "person:"


class Suppression(BaseModel):
    """One hashed identifier key or person id of an erased person; the topic's key is `hash`."""

    hash: str  # <key id>:<hex HMAC-SHA-256> of the identifier key or `person:<id>`
    request_id: str
    erased_at: datetime


class ErasureAudit(BaseModel):
    """One erasure: who asked, when, what was removed and how much; no erased value."""

    request_id: str
    requested_by: str
    requested_at: datetime
    subject_hash: str  # the hash of what was asked for (an identifier key or a person id)
    persons: int  # person ids erased (merged persons included)
    identifiers: int  # identifier keys erased
    removed: dict[str, int]  # rows removed, by ClickHouse table
    alerts_examples: int  # example journeys removed from alerts
    tombstones: dict[str, int]  # keys tombstoned, by compacted topic
    suppressed: int  # hashes added to the suppression list


MEMO_SIZE = 1 << 16
Hasher = Callable[[str, str], str]  # (key id, value) -> "<key id>:<hex>"


@dataclass
class SuppressionList:
    """The hashes of erased persons' identifier keys and person ids, with the key ids they
    were made with, so a value is hashed once per key id in use to be looked up. Pure."""

    hasher: Hasher
    hashes: frozenset[str] = frozenset()
    key_ids: frozenset[str] = frozenset()
    # Values looked up since the list last grew: a person's identifiers recur, and a keyed hash
    # costs a microsecond per key id. Bounded; emptied when full.
    _memo: dict[str, bool] = field(default_factory=dict)

    def add(self, hashed: str) -> None:
        # New sets, never changed in place: a follower thread adds while a stage looks up.
        self.hashes = self.hashes | {hashed}
        self.key_ids = self.key_ids | {hashed.partition(":")[0]}
        self._memo = {}

    def __len__(self) -> int:
        return len(self.hashes)

    def holds(self, values: Iterable[str]) -> bool:
        """Whether any of `values` (identifier keys or `person:<id>`) is suppressed."""
        if not self.hashes:
            return False
        return any(self._held(v) for v in values)

    def _held(self, value: str) -> bool:
        memo = self._memo
        held = memo.get(value)
        if held is None:
            hashes, hasher = self.hashes, self.hasher
            held = any(hasher(k, value) in hashes for k in self.key_ids)
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[value] = held
        return held

    def holds_event(self, event: Any) -> bool:
        """Whether a raw event (a JSON object as published) names an erased identifier."""
        if not self.hashes:
            return False
        identity = event.get("identity") if isinstance(event, Mapping) else None
        if not isinstance(identity, Mapping):
            return False
        memo = self._memo  # inlined: this runs for every event the ingest stage reads
        for name, value in identity.items():
            if value and isinstance(value, str):
                key = f"{name}:{value}"
                held = memo.get(key)
                if held is None:
                    held = self._held(key)
                if held:
                    return True
        return False

    def holds_row(self, row: Mapping[str, Any]) -> bool:
        """Whether a row bound for ClickHouse belongs to an erased person: its person id,
        its identifier (`identity_overrides`), identifiers (`identity_audit`), or the
        identifiers of its identity (`touchpoints`, `identity_links`)."""
        if not self.hashes:
            return False
        return self.holds(row_subjects(row))


def row_subjects(row: Mapping[str, Any]) -> list[str]:
    """The identifier keys and `person:<id>` values a row names."""
    found = [f"{PERSON_PREFIX}{row[k]}" for k in ("person_id",) if isinstance(row.get(k), str)]
    found += [f"{PERSON_PREFIX}{p}" for p in row.get("old_person_ids") or () if isinstance(p, str)]
    if isinstance(row.get("identifier"), str):
        found.append(row["identifier"])
    found += [k for k in row.get("identifiers") or () if isinstance(k, str)]
    identity = row.get("identity")
    if isinstance(identity, Mapping):
        found += [f"{k}:{v}" for k, v in identity.items() if isinstance(v, str) and v]
    return found
