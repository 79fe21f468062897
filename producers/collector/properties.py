"""Client properties into the touchpoint's bounded `properties` map (schemas/touchpoint.py).

Pure. Values there are scalars (str, int, float, bool, None), at most 64 keys of at most 128
characters, strings at most 1024 characters. Segment payloads nest freely, so:

- nested objects are flattened into dotted keys (`product.sku`), up to `MAX_FLATTEN_DEPTH`;
  deeper objects and all lists are kept as their JSON text;
- strings longer than 1024 characters are truncated (the note says so);
- keys that are empty or longer than 128 characters, or hold a control or
  direction-formatting character (`CONTROL`: a key is a name), are dropped, with a note;
- beyond 63 keys the rest are dropped and `_dropped` lists their names, so an analyst sees
  that something is missing; the client is told in the response.

Every key and string value passes through the scrubber first (see `scrub`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from producers.collector.scrub import Scrubber, contact_kind
from schemas.touchpoint import MAX_PROPERTIES

MAX_STRING = 1024
MAX_KEY = 128
MAX_FLATTEN_DEPTH = 3
DROPPED_KEY = "_dropped"

Scalar = str | int | float | bool | None
_PLAIN = frozenset({int, float, bool, type(None)})
# In a name (an event's, a touchpoint's, a property key): C0 and C1 controls (NUL, tab, line
# breaks, DEL) and the characters that reorder text (bidi marks, embeddings, overrides,
# isolates), which make a name read as another in logs and charts; a zero-width no-break
# space (BOM) too.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def has_control(name: str) -> bool:
    """Whether a name holds a `CONTROL` character. Every one of them is unprintable, and
    `isprintable` runs at C speed: most names are answered without the search."""
    return not name.isprintable() and CONTROL.search(name) is not None


@dataclass(slots=True)
class Bounded:
    """The properties map being built and the notes about what had to change."""

    values: dict[str, Scalar] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def bound(items: Iterable[tuple[str, Any]], scrubber: Scrubber) -> Bounded:
    """Flatten, scrub and bound `(key, value)` pairs, in order; the first key wins."""
    out = Bounded()
    values, text = out.values, scrubber.text
    for raw, value in items:
        key = text(raw.strip())
        kind = type(value)
        if (
            (kind is str or kind in _PLAIN)
            and key not in values
            and len(values) < MAX_PROPERTIES - 1
            and _plain_key(key)
        ):
            # Most properties: what `_add` does for a plain value, without a call per value.
            scalar = text(value) if kind is str else value
            if kind is str and len(scalar) > MAX_STRING:
                scalar = _fitted(out, key, scalar)
            values[key] = scalar
        else:
            _add(out, key, value, scrubber, 1)
    if out.dropped:
        listed = ",".join(out.dropped)
        out.values[DROPPED_KEY] = listed if len(listed) <= MAX_STRING else listed[:1021] + "..."
        out.notes.append(f"properties: {len(out.dropped)} dropped beyond {MAX_PROPERTIES} keys")
    return out


def _add(out: Bounded, key: str, value: Any, scrubber: Scrubber, depth: int) -> None:
    if not key or len(key) > MAX_KEY:
        out.notes.append(f"properties: key {key[:40]!r} dropped (1 to {MAX_KEY} characters)")
        return
    if has_control(key):  # not repeated in the note: it would carry the character on
        out.notes.append(
            "properties: a key with a control or direction-formatting character dropped"
        )
        return
    if isinstance(value, dict) and depth < MAX_FLATTEN_DEPTH:
        for sub, item in value.items():
            _add(out, f"{key}.{scrubber.text(sub.strip())}", item, scrubber, depth + 1)
        return
    values = out.values
    if key in values:
        return
    if len(values) >= MAX_PROPERTIES - 1:  # one slot stays free for `_dropped`
        out.dropped.append(key)
        return
    kind = _leaf_kind(key)
    if kind is None and type(value) is str:  # most values: inline, this runs per property
        scalar: Scalar = scrubber.text(value)
    else:
        scalar = _scalar(kind, value, scrubber)
    values[key] = _fitted(out, key, scalar) if isinstance(scalar, str) else scalar


def _fitted(out: Bounded, key: str, text: str) -> str:
    if len(text) <= MAX_STRING:
        return text
    out.notes.append(f"properties.{key}: truncated to {MAX_STRING} characters")
    return text[:MAX_STRING]


def _scalar(kind: str | None, value: Any, scrubber: Scrubber) -> Scalar:
    """A property value as a scalar: containers become (scrubbed) JSON text, and under a key
    whose last part names a contact detail (`kind`) the value becomes its hash."""
    if isinstance(value, dict | list):
        return orjson.dumps(scrubber.tree(value)).decode()
    if kind is not None:
        return scrubber.contact(kind, value)
    return scrubber.text(value) if isinstance(value, str) else value


@functools.lru_cache(maxsize=4096)  # the same keys on every call
def _leaf_kind(key: str) -> str | None:
    return contact_kind(key.rsplit(".", 1)[-1])


@functools.lru_cache(maxsize=4096)
def _plain_key(key: str) -> bool:
    """A key kept as it is, whose value is judged by its look alone."""
    return 0 < len(key) <= MAX_KEY and _leaf_kind(key) is None and not has_control(key)
