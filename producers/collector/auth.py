"""Write keys, as the SDKs send them, and the sources they belong to.

Pure. Server SDKs send HTTP Basic auth with the write key as user name and an empty password;
analytics.js sends `writeKey` in a `text/plain` JSON body (no Authorization header, so no CORS
preflight); RudderStack's beacon puts `?writeKey=` in the query string. The first one present
counts, in that order.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from pydantic import SecretStr

from producers.collector.protocol import HttpError
from producers.collector.rules import SourceRules
from schemas.settings import CollectorSource
from schemas.touchpoint import Channel

_HOW = "send HTTP Basic auth with the write key as user name, or writeKey in the body"


@dataclass(frozen=True, slots=True)
class Source:
    """The system behind one write key: its name, default channel, what it declares about
    its calls, and the key itself."""

    write_key: str = field(repr=False)  # never in a log line
    name: str
    channel: Channel
    rules: SourceRules = field(default_factory=SourceRules, repr=False, compare=False)


def basic_user(authorization: str) -> str:
    """The user name of an HTTP Basic `Authorization` header (the write key)."""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise HttpError(401, "unauthorized", f"unsupported Authorization scheme; {_HOW}")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise HttpError(
            401,
            "unauthorized",
            "the Authorization header is not valid Basic credentials (base64 of 'writeKey:')",
        ) from None
    return decoded.partition(":")[0]


def query_write_key(query: str) -> str | None:
    values = parse_qs(query).get("writeKey")
    return values[0] if values else None


def write_key(authorization: str | None, query: str, doc: Mapping[str, Any]) -> str:
    """The request's write key, from the header, the query or the body; 401 if none."""
    if authorization:
        key = basic_user(authorization)
    else:
        body_key = doc.get("writeKey")
        key = query_write_key(query) or (body_key if isinstance(body_key, str) else "")
    if not key:
        raise HttpError(401, "unauthorized", f"missing write key: {_HOW}")
    return key


class Sources:
    """Write key -> source, from the settings."""

    def __init__(self, sources: Mapping[str, CollectorSource]) -> None:
        self._by_key = {
            key: Source(
                key, source.name, Channel(source.channel), SourceRules.from_settings(source)
            )
            for key, source in sources.items()
        }

    @classmethod
    def from_settings(cls, sources: Mapping[SecretStr, CollectorSource]) -> Sources:
        return cls({key.get_secret_value(): source for key, source in sources.items()})

    def lookup(self, key: str) -> Source:
        source = self._by_key.get(key)
        if source is None:
            raise HttpError(401, "unauthorized", "unknown write key")
        return source
