"""Which trait and property names carry which identifier, per source.

Pure. Segment's conventions are mapped by default: `email` and `phone` (and their usual
spellings, `scrub.contact_kind`) become `email_hash` / `phone_hash`, and a loyalty card
travels as `loyalty_id`, `loyaltyId` or `loyalty_card`. A source declares more names
(`collector.sources.<key>.identifiers`, name -> identifier type), or points a default name
elsewhere. Names are compared as `contact_kind` compares them: case, `_`, `-`, `.` and spaces
do not matter, so `LoyaltyId` and `loyalty-id` are the same name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from producers.collector.scrub import contact_kind

IdentifierKind = Literal["customer_id", "loyalty_id", "email", "phone", "device_id", "anonymous_id"]
# The identity field each kind fills; e-mail addresses and phones only ever as keyed hashes.
IDENTITY_FIELD: Mapping[str, str] = {
    "customer_id": "customer_id",
    "loyalty_id": "loyalty_id",
    "email": "email_hash",
    "phone": "phone_hash",
    "device_id": "device_id",
    "anonymous_id": "anonymous_id",
}
DEFAULT_TRAITS: Mapping[str, IdentifierKind] = {
    "loyalty_id": "loyalty_id",
    "loyaltyId": "loyalty_id",
    "loyalty_card": "loyalty_id",
}
CONTACT_KINDS = frozenset({"email", "phone"})
_KEY_NOISE = re.compile(r"[\s_\-.]")


def normalized(name: str) -> str:
    return _KEY_NOISE.sub("", name).lower()


class IdentifierTraits:
    """Trait or property name -> the identifier it carries, for one source."""

    __slots__ = ("_by_name", "_seen")

    def __init__(self, declared: Mapping[str, IdentifierKind] | None = None) -> None:
        merged = {**DEFAULT_TRAITS, **(declared or {})}
        self._by_name = {normalized(name): kind for name, kind in merged.items()}
        self._seen: dict[str, str | None] = {}  # the same few keys on every call

    def kind(self, name: str) -> str | None:
        """The identifier kind a name carries, or None for an ordinary property."""
        try:
            return self._seen[name]
        except KeyError:
            pass
        kind = self._by_name.get(normalized(name)) or contact_kind(name)
        if len(self._seen) < 4096:
            self._seen[name] = kind
        return kind
