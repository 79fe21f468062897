"""The HTTP side of Segment's tracking API, without any I/O: routes, body decoding, size
limits and the error every rejected request gets.

Paths are the ones the SDKs post to. Server SDKs (analytics-python, rudder-sdk-python,
analytics-node, ...) send `/v1/batch`; analytics.js sends `/v1/t`, `/v1/p`, ... (the first
letter of the call) and `/v1/b` when batching; RudderStack's JavaScript SDK sends
`/v1/<call>`, `/v1/batch` and, from `navigator.sendBeacon`, `/beacon/v1/batch?writeKey=...`;
RudderStack also accepts `/v1/import` as a batch.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

CALLS = ("track", "identify", "page", "screen", "alias", "group")
BATCH = "batch"

ROUTES: dict[str, str] = {
    **{f"/v1/{call}": call for call in CALLS},
    **{f"/v1/{call[0]}": call for call in CALLS},
    "/v1/batch": BATCH,
    "/v1/b": BATCH,
    "/v1/import": BATCH,
    "/beacon/v1/batch": BATCH,
}
# History: its events are backfill and go to the history domain's `raw` (docs/concepts.md),
# so old calls neither move live event time nor arrive late in it.
HISTORY_PATHS = frozenset({"/v1/import"})


class HttpError(Exception):
    """A request the collector answers with an error status; `field` names the culprit.

    The body carries Segment's `code` and `message`, which the SDKs log, plus `field`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"success": False, "code": self.code, "message": self.message}
        if self.field is not None:
            doc["field"] = self.field
        return doc


def too_large(what: str, limit: int) -> HttpError:
    return HttpError(413, "too_large", f"{what} is larger than {limit:,} bytes", "body")


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits: one call's body (and one event of a batch), and one batch's body."""

    max_event_bytes: int
    max_batch_bytes: int

    def for_route(self, kind: str) -> int:
        return self.max_batch_bytes if kind == BATCH else self.max_event_bytes

    def for_wire(self, kind: str) -> int:
        """What may arrive before decompression: gzip can add a little to incompressible data."""
        return self.for_route(kind) + 1024


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The request body as JSON bytes: gunzipped if need be, never more than `limit` bytes
    (a small gzip body can inflate enormously, so decompression stops at the limit)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        if len(body) > limit:
            raise too_large("the request body", limit)
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise HttpError(
            415,
            "unsupported_encoding",
            "unsupported Content-Encoding: use gzip or none",
            "Content-Encoding",
        )
    # A gzip file may hold several members, one after the other (RFC 1952 §2.2): every one
    # is read, and anything after the last that is not a whole member is a 400.
    data = b""
    rest = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data += inflater.decompress(rest, limit + 1 - len(data))
        except zlib.error as exc:
            raise HttpError(400, "malformed_gzip", f"not valid gzip ({exc})", "body") from None
        if len(data) > limit:
            raise too_large("the decompressed request body", limit)
        if not inflater.eof:
            raise HttpError(400, "malformed_gzip", "the gzip stream is truncated", "body")
        rest = inflater.unused_data
        if not rest:
            return data


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong with it."""
    if not body.strip():
        raise HttpError(400, "malformed_json", "the request body is empty", "body")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "malformed_json", f"not valid JSON ({exc})", "body") from None
    if not isinstance(doc, dict):
        kind = type(doc).__name__
        raise HttpError(400, "not_an_object", f"expected a JSON object, got {kind}", "body")
    return doc


# orjson writes at most this many levels of nesting; a call nested deeper is refused.
MAX_DEPTH = 255
# The range orjson reads as integers; beyond it a number would silently become a float.
MIN_INT, MAX_INT = -(2**63), 2**64 - 1
# Only a body with a run of 19 digits can hold an integer beyond 64 bits.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def exact_integers(body: bytes) -> dict[str, Any] | None:
    """The body parsed again with every integer exact, when it may hold one beyond 64 bits
    (orjson would have read it as a float); None when it cannot. Call after `parse_json`."""
    if _LONG_DIGITS.search(body) is None:
        return None
    try:
        doc = json.loads(body)
    except RecursionError:
        raise HttpError(400, "invalid_field", "nested too deeply", "body") from None
    return doc if isinstance(doc, dict) else None


def beyond_64_bits(value: Any) -> str | None:
    """The path of the first integer outside 64 bits in a JSON value (`properties.n`,
    `items[2]`), or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if type(item) is int and not MIN_INT <= item <= MAX_INT:
            return path or "(event)"
        if isinstance(item, dict):
            stack += [(v, f"{path}.{k}" if path else str(k)) for k, v in reversed(item.items())]
        elif isinstance(item, list):
            stack += [(v, f"{path}[{n}]") for n, v in reversed(list(enumerate(item)))]
    return None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """The top-level field under which a JSON value nests more than `limit` levels, or None."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, top = stack.pop()
        if depth > limit:
            return top or "(event)"
        if isinstance(item, dict):
            stack += [(v, depth + 1, top or str(k)) for k, v in item.items()]
        elif isinstance(item, list):
            stack += [(v, depth + 1, top) for v in item]
    return None


def within_limit(messages: list[Any], limit: int, body_size: int) -> list[bool]:
    """Per call of a batch: True where its JSON is surely within `limit` bytes, False where
    it must be measured alone. Calls are serialized in runs of about half the limit: a run
    that fits vouches for each of its calls, and costs far less than one serialization per
    call. A run that does not fit (or nests too deeply) leaves its calls to be measured."""
    known: list[bool] = []
    run = max(1, (limit // 2) * len(messages) // max(body_size, 1))
    for start in range(0, len(messages), run):
        calls = messages[start : start + run]
        try:
            fits = len(orjson.dumps(calls)) <= limit
        except orjson.JSONEncodeError:
            fits = False
        known += [fits] * len(calls)
    return known


def messages_of(doc: dict[str, Any], kind: str) -> list[Any]:
    """The calls a body carries: itself for a single call, its `batch` list for a batch."""
    if kind != BATCH:
        return [doc]
    batch = doc.get("batch")
    if batch is None:
        raise HttpError(400, "invalid_field", "required: a list of calls", "batch")
    if not isinstance(batch, list):
        raise HttpError(400, "invalid_field", "must be a list of calls", "batch")
    if not batch:
        raise HttpError(400, "invalid_field", "is empty", "batch")
    return batch
