"""A mapped touchpoint straight to its JSON fragment and partition key, without building the
pydantic model: the collector's hot path (tests/bench/collector.py).

Pure. `encode` takes the document `segment` builds and returns what
`Touchpoint.model_validate(doc)` followed by `model_dump_json()` and
`identity.partition_key()` would give, byte for byte, but only when it can tell cheaply that
the model takes the document as it is. Each rule of `Touchpoint` is checked on the fields the
mapping fills; anything else (a value the model would strip, a time not in UTC, an integer
beyond 64 bits, a field the mapping does not write) gives None, and the caller validates
with the model, which gives its exact output or error. tests/property/test_collector_wire.py
holds the two paths equal.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from schemas.touchpoint import (
    IDENTIFIER_FIELDS,
    MAX_PROPERTIES,
    VERSION_2_FIELDS,
    VERSION_3_FIELDS,
    Attribution,
    Channel,
    Identity,
    Touchpoint,
)

MAX_NAME = 128
MAX_IDENTIFIER = 256
MAX_PROPERTY_TEXT = 1024
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# What a version 1 touchpoint serializes, in order; later versions' fields are left out unset.
_FIELDS = [
    name
    for name in Touchpoint.model_fields
    if name not in VERSION_2_FIELDS and name not in VERSION_3_FIELDS
]
# A version 3 one from the collector: the same, and its attribution last.
_ATTRIBUTED_FIELDS = [*_FIELDS, "attribution"]
_ATTRIBUTION_ORDER = {name: n for n, name in enumerate(Attribution.model_fields)}
_ATTRIBUTION_LIMITS = {name: 256 for name in Attribution.model_fields} | {
    "page_url": 2048,
    "referrer": 2048,
    "user_agent_family": 64,
}
_DEVICE_CLASSES = frozenset({"desktop", "mobile", "tablet", "bot", "other"})
_IDENTITY_FIELDS = list(Identity.model_fields)
_SCALARS = frozenset({int, float, bool, type(None)})


def encode(doc: dict[str, Any]) -> tuple[str, bytes] | None:
    """(partition key, JSON fragment) of a mapped document that has every version 1 field in
    the model's order (and, in version 3, its attribution last), or None: validate it with
    the model."""
    fields = list(doc)
    version = 1 if fields == _FIELDS else 3 if fields == _ATTRIBUTED_FIELDS else None
    if not (
        version is not None
        and _event_id(doc["event_id"])
        and isinstance(doc["channel"], Channel)
        and _name(doc["source"])
        and _name(doc["event_type"])
        and doc["schema_version"] == version
        and type(doc["schema_version"]) is int
        and (version == 1 or _attribution(doc["attribution"]))
        and _utc(doc["occurred_at"])
        and (doc["received_at"] is None or _utc(doc["received_at"]))
        and _optional_identifier(doc["session_id"])
        and (doc["touchpoint"] is None or _name(doc["touchpoint"]))
        and _properties(doc["properties"])
        and doc["backfill"] is False
    ):
        return None
    key = _partition_key(doc["identity"])
    if key is None:
        return None
    try:
        return key, orjson.dumps(doc, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a lone surrogate
        return None


def _partition_key(identity: Any) -> str | None:
    """`Identity.partition_key()` of a valid identity; None if the model might refuse it."""
    if type(identity) is not dict or list(identity) != _IDENTITY_FIELDS:
        return None
    for value in identity.values():
        if value is not None and not (type(value) is str and 0 < len(value) <= MAX_IDENTIFIER):
            return None
    for name in IDENTIFIER_FIELDS:
        value = identity[name]
        if value:
            return f"{name}:{value}"
    return None  # no identifier: the model says so


def is_canonical_uuid(text: str) -> bool:
    """Text that is a UUID as pydantic writes one (lower-case hex, hyphenated)."""
    return _CANONICAL_UUID.fullmatch(text) is not None


def _event_id(value: Any) -> bool:
    return isinstance(value, UUID) or (type(value) is str and is_canonical_uuid(value))


def _name(value: Any) -> bool:
    """`Name` keeps it as it is: 1 to 128 characters, no whitespace around them (Python's
    `strip` removes every character pydantic's does, and more)."""
    return type(value) is str and 0 < len(value) <= MAX_NAME and value.strip() == value


def _optional_identifier(value: Any) -> bool:
    return value is None or (type(value) is str and 0 < len(value) <= MAX_IDENTIFIER)


def _utc(value: Any) -> bool:
    return type(value) is datetime and value.tzinfo is UTC


def _attribution(block: Any) -> bool:
    """`Attribution` keeps it as it is: known fields in its order, text within bounds (the
    user-agent family stripped, as `Short` would), a known device class."""
    if type(block) is not dict or not block:
        return False
    last = -1
    for name, value in block.items():
        place = _ATTRIBUTION_ORDER.get(name)
        if place is None or place <= last or type(value) is not str:
            return False
        if len(value) > _ATTRIBUTION_LIMITS[name]:
            return False
        last = place
    family = block.get("user_agent_family")
    if family is not None and not (family and family.strip() == family):
        return False
    return block.get("device_class", "other") in _DEVICE_CLASSES


def _properties(values: Any) -> bool:
    if type(values) is not dict or len(values) > MAX_PROPERTIES:
        return False
    for key, value in values.items():  # `_name` spelled out: this runs per property
        kind = type(value)
        if not (
            type(key) is str
            and 0 < len(key) <= MAX_NAME
            and key.strip() == key
            and (kind in _SCALARS or (kind is str and len(value) <= MAX_PROPERTY_TEXT))
        ):
            return False
    return True
