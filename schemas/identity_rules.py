"""The guards of identity stitching (docs/concepts.md §3), as one validated, immutable config.

`IdentityRules` owns what counts as a junk identifier value, how many identifiers of each type
one person may hold, whether two customer ids may ever merge, and the identifier priorities
(which identifier names a person, anchors an event's links and orders them). The stitching
graph (`identity.py`) reads the rules; nothing here keeps state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_serializer,
    field_validator,
    model_validator,
)

from schemas.touchpoint import IDENTIFIER_FIELDS

DEFAULT_DENYLIST: frozenset[str] = frozenset(
    {
        "",
        "0",
        "-1",
        "null",
        "none",
        "nil",
        "undefined",
        "nan",
        "n/a",
        "unknown",
        "anonymous",
        "guest",
        "[object object]",
        # The advertising id a device reports when tracking is limited.
        "00000000-0000-0000-0000-000000000000",
    }
)
"""Values no real identifier has; compared after `normalize` (trimmed, unquoted, lower case)."""

DEFAULT_CAPS: Mapping[str, int] = {
    "customer_id": 1,
    "loyalty_id": 3,
    "email_hash": 5,
    "phone_hash": 5,
    "device_id": 10,
    "anonymous_id": 200,
}
"""Identifiers of one type one person may hold: beyond these, a link is refused."""

_QUOTES = "\"'`"
Cap = Annotated[int, Field(ge=1)]


def normalize(value: str) -> str:
    """The form the denylist compares: trimmed, outer quotes removed (repeatedly), lower case,
    so `' NULL '`, `'"null"'` and `"'null'"` are all `null`."""
    text = value.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        text = text[1:-1].strip()
    return text.lower()


class IdentityRules(BaseModel):
    """Stitching guards. Defaults follow docs/concepts.md §3; every field can be configured.

    - `denylist` and `extra_denylist`: junk values, compared after `normalize`; use
      `extra_denylist` to add values while keeping the defaults.
    - `deny_patterns`: regular expressions; a value is junk when one matches the whole
      normalized value (case-insensitive).
    - `caps`: at most this many identifiers of a type per person; types not listed are uncapped.
    - `max_identifiers`: optional cap on all identifiers of one person.
    - `priorities`: all identifier types, most stable first. The first identifier of a person
      names it; the first of an event anchors its links; an event's links are judged in this
      order, so a lower-priority identifier's link gives way when a cap is reached.
    - `allow_customer_id_merge`: never by default; when true, `caps["customer_id"]` (if set)
      bounds how many customer ids may share a person.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    denylist: frozenset[str] = DEFAULT_DENYLIST
    extra_denylist: frozenset[str] = frozenset()
    deny_patterns: tuple[str, ...] = ()
    caps: dict[str, Cap] = Field(default_factory=lambda: dict(DEFAULT_CAPS))
    max_identifiers: Annotated[int, Field(ge=2)] | None = None
    priorities: tuple[str, ...] = IDENTIFIER_FIELDS
    allow_customer_id_merge: bool = False

    _junk: frozenset[str] = PrivateAttr(default=frozenset())
    _pattern: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("denylist", "extra_denylist")
    @classmethod
    def _normalized(cls, values: frozenset[str]) -> frozenset[str]:
        return frozenset(normalize(v) for v in values)

    @field_serializer("denylist", "extra_denylist")
    def _sorted(self, values: frozenset[str]) -> list[str]:
        return sorted(values)  # a stable snapshot, whatever the set's order

    @field_validator("deny_patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"deny pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
        return patterns

    @field_validator("caps")
    @classmethod
    def _known_cap_types(cls, caps: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(caps) - set(IDENTIFIER_FIELDS))
        if unknown:
            raise ValueError(f"caps for unknown identifier types {unknown}")
        return caps

    @field_validator("priorities")
    @classmethod
    def _all_types_once(cls, priorities: tuple[str, ...]) -> tuple[str, ...]:
        if sorted(priorities) != sorted(IDENTIFIER_FIELDS):
            raise ValueError(f"priorities must list each identifier type once: {IDENTIFIER_FIELDS}")
        return priorities

    @model_validator(mode="after")
    def _customer_cap_agrees(self) -> IdentityRules:
        cap = self.caps.get("customer_id")
        if not self.allow_customer_id_merge and cap is not None and cap > 1:
            raise ValueError("caps.customer_id > 1 needs allow_customer_id_merge=true")
        if self.allow_customer_id_merge and cap == 1:
            raise ValueError("allow_customer_id_merge=true needs caps.customer_id > 1 or unset")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._junk = self.denylist | self.extra_denylist
        if self.deny_patterns:
            joined = "|".join(f"(?:{p})" for p in self.deny_patterns)
            self._pattern = re.compile(joined, re.IGNORECASE)

    def junk_reason(self, value: str) -> str | None:
        """Why `value` is junk (`"denylist"` or `"pattern"`), or None for a usable value."""
        return junk_reason(value, self._junk, self._pattern)

    def junk_test(self) -> tuple[frozenset[str], re.Pattern[str] | None]:
        """The normalized junk values and the joined pattern, for `junk_reason` in a loop."""
        return self._junk, self._pattern

    def rank(self) -> dict[str, int]:
        """Identifier type -> priority rank (0 is the most stable)."""
        return {name: i for i, name in enumerate(self.priorities)}


def junk_reason(value: str, junk: frozenset[str], pattern: re.Pattern[str] | None) -> str | None:
    """Why `value` is junk given normalized junk values and a pattern, or None."""
    text = normalize(value)
    if text in junk:
        return "denylist"
    if pattern is not None and pattern.fullmatch(text):
        return "pattern"
    return None
