"""Raw e-mail addresses and phone numbers never reach Kafka (docs/concepts.md §2), whatever field a
client puts them in: they are replaced by their keyed hashes (`producers.pii`).

Pure. Two kinds of evidence are used: a key that names a contact detail (`email`, `phone`,
`mobile`, ...), whatever the value looks like, and a value that holds one, found in any text
by the one detector every producer uses (`producers.contact_details`: e-mail addresses,
also URL-encoded or Unicode, and phone numbers as libphonenumber reads them, but not bare
digit strings, dates, amounts or ids).
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
_MAX_DEPTH = 32


@functools.lru_cache(maxsize=4096)  # the same few keys arrive over and over
def contact_kind(key: str) -> str | None:
    """'email' or 'phone' when a key names that contact detail (any case, `_`, `-`)."""
    norm = _KEY_NOISE.sub("", key).lower()
    if norm in EMAIL_KEYS:
        return "email"
    if norm in PHONE_KEYS:
        return "phone"
    return None


class Scrubber:
    """Replaces contact details with `<key id>:<hmac>` hashes."""

    def __init__(self, hasher: PiiHasher) -> None:
        self.hasher = hasher

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
        return self.hasher.text(value)

    def hashed(self, value: str) -> str:
        """`text` without the hasher's memory of texts that held nothing to hash."""
        return self.hasher.details.replace(value)

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
