"""Client properties into the touchpoint's bounded `properties` map (schemas/touchpoint.py).

Pure. Values there are scalars (str, int, float, bool, None), at most 64 keys of at most 128
characters, strings at most 1024 characters. Segment payloads nest freely, so:

- nested objects are flattened into dotted keys (`product.sku`), up to `MAX_FLATTEN_DEPTH`;
  deeper objects and all lists are kept as their JSON text;
- strings longer than 1024 characters are truncated (the note says so);
- keys that are empty or longer than 128 characters are dropped, with a note;
- beyond 63 keys the rest are dropped and `_dropped` lists their names, so an analyst sees
  that something is missing; the client is told in the response.

Every key and string value passes through the scrubber first (see `scrub`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from producers.collector.scrub import Scrubber
from schemas.touchpoint import MAX_PROPERTIES

MAX_STRING = 1024
MAX_KEY = 128
MAX_FLATTEN_DEPTH = 3
DROPPED_KEY = "_dropped"

Scalar = str | int | float | bool | None


@dataclass(slots=True)
class Bounded:
    """The properties map being built and the notes about what had to change."""

    values: dict[str, Scalar] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def bound(items: Iterable[tuple[str, Any]], scrubber: Scrubber) -> Bounded:
    """Flatten, scrub and bound `(key, value)` pairs, in order; the first key wins."""
    out = Bounded()
    for key, value in items:
        _add(out, scrubber.text(key.strip()), value, scrubber, 1)
    if out.dropped:
        listed = ",".join(out.dropped)
        out.values[DROPPED_KEY] = listed if len(listed) <= MAX_STRING else listed[:1021] + "..."
        out.notes.append(f"properties: {len(out.dropped)} dropped beyond {MAX_PROPERTIES} keys")
    return out


def _add(out: Bounded, key: str, value: Any, scrubber: Scrubber, depth: int) -> None:
    if not key or len(key) > MAX_KEY:
        out.notes.append(f"properties: key {key[:40]!r} dropped (1 to {MAX_KEY} characters)")
        return
    if isinstance(value, dict) and depth < MAX_FLATTEN_DEPTH:
        for sub, item in value.items():
            _add(out, f"{key}.{scrubber.text(sub.strip())}", item, scrubber, depth + 1)
        return
    if key in out.values:
        return
    if len(out.values) >= MAX_PROPERTIES - 1:  # one slot stays free for `_dropped`
        out.dropped.append(key)
        return
    scalar = _scalar(key.rsplit(".", 1)[-1], value, scrubber)
    if isinstance(scalar, str) and len(scalar) > MAX_STRING:
        out.notes.append(f"properties.{key}: truncated to {MAX_STRING} characters")
        scalar = scalar[:MAX_STRING]
    out.values[key] = scalar


def _scalar(leaf: str, value: Any, scrubber: Scrubber) -> Scalar:
    """A property value as a scalar: containers become (scrubbed) JSON text."""
    if isinstance(value, dict | list):
        return orjson.dumps(scrubber.tree(value)).decode()
    scrubbed: Scalar = scrubber.value(leaf, value)
    return scrubbed
