"""Keyed hashing of e-mail addresses and phone numbers before they leave a producer.

Raw contact details never reach Kafka (docs/concepts.md §2): producers normalize them and send
`<key id>:<hex HMAC-SHA-256>`. The key id travels with the hash so keys can be rotated: a new
key gets a new id, and joins across the rotation go through the old id's hashes. Contact
details inside free text are found by `producers.contact_details` and hashed the same way
(`PiiHasher.text`), wherever free text enters.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import orjson

from producers.contact_details import ContactDetails, is_id_or_time
from schemas.settings import PiiSettings

_NON_DIGITS = re.compile(r"[^\d+]")
# Short texts already seen to need nothing (ids, names and keys recur): a set lookup instead
# of a search. Bounded (a few MB at most): cleared when full.
_CLEAN_TEXTS = 1 << 16
_CLEAN_TEXT_CHARS = 64
# Deeper than any valid event: below this the rest is scrubbed as one JSON text.
_MAX_DEPTH = 32
# An event's fields that every event has and that are new in each: when they have their
# shape (a UUID, a timestamp) they are let through without the search and without filling
# the memory of clean texts.
_ID_AND_TIMES = frozenset({"event_id", "occurred_at", "received_at"})


class PiiHasher:
    """Hashes contact details with the active key from the settings."""

    def __init__(self, settings: PiiSettings) -> None:
        self.key_id = settings.active_key_id
        self._key = settings.keys[self.key_id].get_secret_value().encode()
        self._settings = settings
        self._parent = settings.derived_from.get(self.key_id)  # a rotated key (hash_with)
        self.default_country_code = settings.default_country_code
        self.details = ContactDetails(
            self.email, self.phone, settings.phone_regions, settings.phone_leniency
        )
        self._clean: set[str] = set()

    def email(self, address: str) -> str:
        """Hash of a trimmed, lower-cased e-mail address."""
        return self._hash(normalize_email(address))

    def phone(self, number: str) -> str:
        """Hash of a phone number in E.164-like form (digits with the country code)."""
        return self._hash(normalize_phone(number, self.default_country_code))

    def text(self, value: str) -> str:
        """A free text with every e-mail address and phone number in it hashed."""
        if value in self._clean:
            return value
        out = self.details.replace(value)
        if out == value and len(value) <= _CLEAN_TEXT_CHARS:
            if len(self._clean) >= _CLEAN_TEXTS:
                self._clean.clear()
            self._clean.add(value)
        return out

    def document(self, doc: Any, depth: int = 0) -> Any:
        """Any decoded JSON value with every text in it (keys too) passed through `text`.
        Objects and lists are changed in place (a decoded event is the caller's own copy).
        Per event on the ingest stage's path: texts already known clean cost a set lookup."""
        if type(doc) is str:
            return self.text(doc)
        if depth >= _MAX_DEPTH and isinstance(doc, dict | list):
            try:
                return self.text(orjson.dumps(doc).decode())
            except orjson.JSONEncodeError:
                return "(nested too deeply to keep)"
        if type(doc) is list:
            for i, item in enumerate(doc):
                doc[i] = self._item(item, depth)
        elif type(doc) is dict:
            clean, renamed = self._clean, []
            for key, item in doc.items():
                if type(item) is not str:
                    doc[key] = self._item(item, depth)
                elif item not in clean and not (key in _ID_AND_TIMES and is_id_or_time(item)):
                    doc[key] = self.text(item)
                if key not in clean and self.text(key) != key:
                    renamed.append(key)
            for key in renamed:
                doc[self.text(key)] = doc.pop(key)
        return doc

    def _item(self, item: Any, depth: int) -> Any:
        kind = type(item)
        if kind is str:
            return self.text(item)
        return self.document(item, depth + 1) if kind is dict or kind is list else item

    def keyed(self, value: str) -> str:
        """Hash of any other value that must not travel as it is (an IP address)."""
        return self._hash(value)

    def _hash(self, value: str) -> str:
        if self._parent is not None:
            value = hash_with(self._settings, self._parent, value).partition(":")[2]
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return f"{self.key_id}:{digest}"


def hash_with(settings: PiiSettings, key_id: str, value: str) -> str:
    """`value` hashed with the key `key_id` names, as `<key id>:<hex>`. A key rotated from
    another (`derived_from`) hashes that key's hex digest, not the value: so an old hash can
    be carried to the new key without the value (`derive`), and neither key alone makes a
    new hash. The suppression list of erased persons hashes its entries this way too."""
    parent = settings.derived_from.get(key_id)
    if parent is not None:
        value = hash_with(settings, parent, value).partition(":")[2]
    key = settings.keys[key_id].get_secret_value().encode()
    return f"{key_id}:{hmac.new(key, value.encode(), hashlib.sha256).hexdigest()}"


def derive(settings: PiiSettings, hashed: str, key_id: str) -> str | None:
    """The hash `key_id` makes of the value `hashed` (`<key id>:<hex>`) was made from, when
    `key_id` was rotated from that key (directly or through others); None otherwise."""
    source, _, digest = hashed.partition(":")
    chain: list[str] = []
    current: str | None = key_id
    while current != source:
        if current is None or len(chain) > len(settings.keys):
            return None
        chain.append(current)
        current = settings.derived_from.get(current)
    for kid in reversed(chain):
        key = settings.keys[kid].get_secret_value().encode()
        digest = hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()
    return f"{key_id}:{digest}"


def normalize_email(address: str) -> str:
    return address.strip().lower()


def normalize_phone(number: str, default_country_code: str) -> str:
    """`+44 20 7946 0958`, `0044 20 7946 0958` and (with code 44) `020 7946 0958` agree."""
    digits = _NON_DIGITS.sub("", number.strip())
    if digits.startswith("+"):
        return "+" + digits[1:].replace("+", "")
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("0"):
        return f"+{default_country_code}{digits[1:]}"
    return f"+{default_country_code}{digits}" if len(digits) <= 10 else f"+{digits}"
