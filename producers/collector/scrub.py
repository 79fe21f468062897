"""Raw e-mail addresses and phone numbers never reach Kafka (docs/concepts.md §2), whatever field a
client puts them in: they are replaced by their keyed hashes (`producers.pii`).

Pure. Two kinds of evidence are used: a key that names a contact detail (`email`, `phone`,
`mobile`, ...), and a value that looks like one. E-mail addresses are found anywhere in a
text (also URL-encoded, as in `?email=a%40b.com`); a phone number is recognized as a whole
value (`+44 20 7946 0958`, `(555) 123-4567`) or, inside longer text, when it starts with `+`
or is written with a phone's separators (`(555) 010-4477`, `020 7946 0123`).
Bare digit strings are left alone unless their key names a phone: they are far more often
order numbers than phone numbers. When in doubt the value is hashed: a lost order number is a
smaller harm than a leaked phone number.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

from producers.pii import PiiHasher

EMAIL_KEYS = frozenset({"email", "emailaddress"})
PHONE_KEYS = frozenset(
    {"phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "cellphone", "telephone"}
)
_KEY_NOISE = re.compile(r"[\s_\-.]")
# Bounded repetitions (RFC 5321 lengths) keep the search linear on hostile long texts.
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+\-]{1,64}(?:@|%40)[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}"
    r"\.[A-Za-z]{2,24}"
)
_PHONE_VALUE = re.compile(r"\+?\(?\d[\d ().\-/]*\d\)?")
_PHONE_IN_TEXT = re.compile(r"\+\d[\d ().\-]{6,20}\d")
# Inside text, numbers written the way people write phones: `(555) 010-4477`,
# `555-010-4477`, `020 7946 0123`. Dates (2026-11-20) and amounts do not have these shapes.
_PHONE_FORMATTED = re.compile(
    r"(?<![\w\-])(?:\(\d{2,4}\) ?\d{3,4}[ .\-]\d{3,4}|\d{3}[.\-]\d{3}[.\-]\d{4}"
    r"|0\d{2,4} \d{3,4} \d{3,4})(?![\w\-])"
)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_PHONE_START = frozenset("+(0123456789")
_MAX_DEPTH = 32
# Whatever the patterns above can change holds an `@`, a `%40` or a run of at least 8
# digits and phone punctuation (every phone shape above is one), so a text without any of
# them is left as it is. Most texts are such, and one search is cheaper than all the rules.
_SUSPECT = re.compile(r"@|%40|\d[\d ().\-/]{6,}\d")
# Short texts already seen to need nothing (ids, names and keys recur): a set lookup instead
# of a search. Bounded (a few MB at most): cleared when full.
_CLEAN_TEXTS = 1 << 16
_CLEAN_TEXT_CHARS = 64


@functools.lru_cache(maxsize=4096)  # the same few keys arrive over and over
def contact_kind(key: str) -> str | None:
    """'email' or 'phone' when a key names that contact detail (any case, `_`, `-`)."""
    norm = _KEY_NOISE.sub("", key).lower()
    if norm in EMAIL_KEYS:
        return "email"
    if norm in PHONE_KEYS:
        return "phone"
    return None


def looks_like_phone(value: str) -> bool:
    """A whole value shaped like a phone number: 10 to 15 digits with phone punctuation, or
    8 to 15 after a leading `+`. Plain digit strings and IPv4 addresses are not phones."""
    text = value.strip()
    if not 8 <= len(text) <= 24 or text[0] not in _PHONE_START:
        return False
    if not _PHONE_VALUE.fullmatch(text):
        return False
    digits = sum(c.isdigit() for c in text)
    if text.startswith("+"):
        return 8 <= digits <= 15
    if digits == len(text) or _IPV4.fullmatch(text):
        return False
    return 10 <= digits <= 15


class Scrubber:
    """Replaces contact details with `<key id>:<hmac>` hashes."""

    def __init__(self, hasher: PiiHasher) -> None:
        self.hasher = hasher
        self._clean: set[str] = set()

    def contact(self, kind: str, value: Any) -> str | None:
        """The hash of a value under a contact key; None when there is nothing to hash."""
        if isinstance(value, bool) or not isinstance(value, str | int):
            return None
        text = str(value).strip()
        if not text:
            return None
        return self.hasher.email(text) if kind == "email" else self.hasher.phone(text)

    def text(self, value: str) -> str:
        """A text with every e-mail address and phone number in it hashed."""
        if value in self._clean:
            return value
        if _SUSPECT.search(value) is None:
            if len(value) <= _CLEAN_TEXT_CHARS:
                if len(self._clean) >= _CLEAN_TEXTS:
                    self._clean.clear()
                self._clean.add(value)
            return value
        return self.hashed(value)

    def hashed(self, value: str) -> str:
        """`text` without the shortcut for texts that hold nothing to hash."""
        if ("@" in value or "%40" in value) and _EMAIL.search(value):
            value = _EMAIL.sub(self._email_match, value)
        if looks_like_phone(value):
            return self.hasher.phone(value)
        if "+" in value:
            value = _PHONE_IN_TEXT.sub(self._phone_match, value)
        return _PHONE_FORMATTED.sub(self._phone_match, value)

    def value(self, key: str, value: Any) -> Any:
        """One property value, judged by its key as well as by its look."""
        kind = contact_kind(key)
        if kind is not None:
            return self.contact(kind, value)
        return self.text(value) if isinstance(value, str) else value

    def tree(self, doc: Any, depth: int = 0) -> Any:
        """A copy of any JSON value with every contact detail hashed (for dead letters, which
        keep the client's payload). Below `_MAX_DEPTH` levels the rest is scrubbed as text."""
        if isinstance(doc, str):
            return self.text(doc)
        if not isinstance(doc, dict | list):
            return doc
        if depth >= _MAX_DEPTH:
            try:
                return self.text(orjson.dumps(doc).decode())
            except orjson.JSONEncodeError:
                return "(nested too deeply to keep)"
        if isinstance(doc, list):
            return [self.tree(item, depth + 1) for item in doc]
        out: dict[str, Any] = {}
        for key, item in doc.items():
            kind = contact_kind(key)
            if kind is not None and not isinstance(item, dict | list):
                out[key] = self.contact(kind, item)
            else:
                out[key] = self.tree(item, depth + 1)
        return out

    def _email_match(self, match: re.Match[str]) -> str:
        return self.hasher.email(match.group(0).replace("%40", "@"))

    def _phone_match(self, match: re.Match[str]) -> str:
        found = match.group(0)
        digits = sum(c.isdigit() for c in found)
        return self.hasher.phone(found) if 8 <= digits <= 15 else found
