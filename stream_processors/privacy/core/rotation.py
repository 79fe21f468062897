"""Contact hashes across a key rotation: an identifier keeps the form it was first seen in.

A person's e-mail hashed under the key before a rotation (`email_hash:old:X`) and under the
new one (`email_hash:new:Y`) must be one identifier, or the person splits in two. The new key
hashes the old key's digest (`producers/pii.py`), so Y can be computed from X without the
address: `journeys privacy rotate-key` publishes `email_hash:new:Y -> email_hash:old:X` for
every hash ClickHouse holds, and during the rotation window the ingest stage adds the same
for every old-key hash that still arrives. The ingest stage then writes every aliased hash in
its first form, so stitching, person ids and erasure see one identifier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

CONTACT_FIELDS = ("email_hash", "phone_hash")

Derive = Callable[[str], str | None]  # an old-key hash -> its new-key form, or None


def canonical(
    event: Any, aliases: Mapping[str, str], derive: Derive | None
) -> dict[str, str] | None:
    """Rewrite `event`'s contact hashes (in place) to the form they were first seen in; with
    `derive` (the rotation window is open), return the aliases its old-key hashes add
    (new-key identifier key -> this one), else None."""
    identity = event.get("identity") if isinstance(event, MutableMapping) else None
    if not isinstance(identity, MutableMapping):
        return None
    added: dict[str, str] | None = None
    for name in CONTACT_FIELDS:
        value = identity.get(name)
        if not isinstance(value, str) or not value:
            continue
        first = aliases.get(f"{name}:{value}")
        if first is not None:
            identity[name] = first.partition(":")[2]
            continue
        derived = derive(value) if derive is not None else None
        if derived is not None and derived != value:
            key = f"{name}:{derived}"
            if key not in aliases:
                added = added or {}
                added[key] = f"{name}:{value}"
    return added
