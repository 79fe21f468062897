"""What a request to ClickHouse's HTTP interface asks, read as ClickHouse reads it.

The query comes from the `query` parameter, the body, or both: ClickHouse appends the body to
the parameter, and for `INSERT ... FORMAT <f>` (or `VALUES`) the body is the data. Every
other parameter is a setting, except the reserved ones below and `param_<name>` (a query
parameter). Credentials come from `X-ClickHouse-User`/`X-ClickHouse-Key`, basic auth, or the
`user`/`password` parameters.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from sinks.http.core.errors import QueryError

# ClickHouse's reserved parameter names: not settings.
RESERVED = frozenset(
    {
        "query",
        "compress",
        "decompress",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
        "database",
        "default_format",
        # A setting, but one this interface applies itself (to the response) rather than the engine.
        "enable_http_compression",
        "http_zlib_compression_level",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LEADING_NOISE = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.I)
_TRAILING_VALUES = re.compile(r"\bVALUES\s*$", re.I)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
# The statement ends at its format's name and one line break (or space); the data follows.
_INLINE_INSERT = re.compile(
    rb"(?P<head>\s*INSERT\s[^\n]*?)\s+FORMAT\s+(?P<format>[A-Za-z0-9_]+)(?:\r?\n| )",
    re.I | re.S,
)
_INLINE_HEAD_LIMIT = 1 << 16
# Statements a GET may run: ClickHouse runs GET requests with readonly=2 (read, and set).
READING_STATEMENTS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "SET", "USE"}
)
DEFAULT_FORMAT = "TabSeparated"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


@dataclass(frozen=True)
class ClickHouseRequest:
    method: str
    query: str | None
    database: str | None
    default_format: str
    query_id: str | None
    session_id: str | None
    settings: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    credentials: Credentials = Credentials("default", "")
    http_compression: bool = False
    accept_encoding: str = ""
    content_encoding: str = ""
    wait_end_of_query: bool = False  # read the whole result before answering
    protocol_revision: int = (
        0  # `client_protocol_version`: Native blocks as its revision writes them
    )
    compress: bool = False  # ClickHouse's own block compression of the response
    decompress: bool = False  # ... and of the request body


@dataclass(frozen=True)
class Query:
    """Run `sql`; the result in `output_format` unless the SQL names its own."""

    sql: str
    output_format: str


@dataclass(frozen=True)
class Insert:
    """`head` (an INSERT without FORMAT or data) fed with `data` in `data_format`."""

    head: str
    data_format: str
    data: bytes


def parse_request(method: str, query_string: str, headers: Mapping[str, str]) -> ClickHouseRequest:
    """The request's parts; `headers` keyed by lower-case name."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    values: dict[str, str] = {}
    settings: dict[str, str] = {}
    params: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith("param_"):
            params[name.removeprefix("param_")] = value
        elif name in RESERVED:
            values[name] = value
        elif _SETTING_NAME.match(name):
            settings[name] = value
        else:
            raise QueryError.of(115, f"Unknown setting '{name}'")
    return ClickHouseRequest(
        method=method.upper(),
        query=values.get("query"),
        database=values.get("database") or headers.get("x-clickhouse-database") or None,
        default_format=values.get("default_format")
        or headers.get("x-clickhouse-format")
        or DEFAULT_FORMAT,
        query_id=values.get("query_id") or headers.get("x-clickhouse-query-id") or None,
        session_id=values.get("session_id") or None,
        settings=settings,
        params=params,
        credentials=credentials(values, headers),
        http_compression=_truthy(values.get("enable_http_compression", "0")),
        accept_encoding=headers.get("accept-encoding", ""),
        content_encoding=headers.get("content-encoding", "").strip().lower(),
        wait_end_of_query=_truthy(values.get("wait_end_of_query", "0")),
        protocol_revision=_revision(values.get("client_protocol_version", "0")),
        compress=_truthy(values.get("compress", "0")),
        decompress=_truthy(values.get("decompress", "0")),
    )


def credentials(values: Mapping[str, str], headers: Mapping[str, str]) -> Credentials:
    """Who asks, looked for where ClickHouse looks; anonymous is the `default` user."""
    if "x-clickhouse-user" in headers or "x-clickhouse-key" in headers:
        return Credentials(
            headers.get("x-clickhouse-user") or "default", headers.get("x-clickhouse-key", "")
        )
    authorization = headers.get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise QueryError.of(516, "Malformed basic authorization header") from None
        user, _, password = decoded.partition(":")
        return Credentials(user or "default", password)
    return Credentials(values.get("user") or "default", values.get("password", ""))


def plan(request: ClickHouseRequest, body: bytes) -> Query | Insert:
    """What to run: an INSERT whose data is the body (or follows the statement in it), or one
    query (parameter + body)."""
    if request.query is not None and body and _is_insert(request.query):
        head = request.query.strip().rstrip(";")
        found = _TRAILING_FORMAT.search(head)
        if found:
            return Insert(head[: found.start()].rstrip(), found.group(1), body)
        if _TRAILING_VALUES.search(head):
            return Insert(_TRAILING_VALUES.sub("", head).rstrip(), "Values", body)
    if request.query is None:
        inline = _inline_insert(body)
        if inline is not None:
            return inline
    parts = [request.query] if request.query is not None else []
    if body:
        try:
            parts.append(body.decode())
        except UnicodeDecodeError:
            raise QueryError.of(
                27,
                "The query (the request body) is not UTF-8 text; insert binary data "
                "with the query in the `query` parameter",
            ) from None
    sql = "\n".join(parts).strip()
    if not sql:
        raise QueryError.of(62, "Empty query")
    return Query(sql, request.default_format)


def check_reads_only(sql: str) -> None:
    """For a GET on a kept session's handle, which cannot be made read-only for one request:
    the statement must be one that reads (a fresh handle is read-only to the engine)."""
    if statement_kind(sql) not in READING_STATEMENTS:
        raise QueryError.of(
            164, "Cannot execute query in readonly mode: a GET request only reads (use POST)"
        )


def _inline_insert(body: bytes) -> Insert | None:
    """`INSERT ... FORMAT <f>` then a newline then data, all in the body (clickhouse-connect
    sends small inserts so): the data may be binary, so it never goes through the SQL text."""
    found = _INLINE_INSERT.match(body, 0, _INLINE_HEAD_LIMIT)
    if found is None:
        return None
    try:
        head = found.group("head").decode()
    except UnicodeDecodeError:
        return None
    return Insert(head.strip(), found.group("format").decode(), body[found.end() :])


def result_format(sql: str, requested: str) -> str:
    """The format the result comes in: the SQL's own FORMAT clause wins."""
    found = _TRAILING_FORMAT.search(sql)
    return found.group(1) if found else requested


def statement_kind(sql: str) -> str:
    found = _FIRST_WORD.match(_LEADING_NOISE.sub("", sql, count=1))
    return found.group(0).upper() if found else ""


def _is_insert(sql: str) -> bool:
    return statement_kind(sql) == "INSERT"


def _revision(value: str) -> int:
    try:
        return max(int(value), 0)
    except ValueError:
        raise QueryError.of(36, f"client_protocol_version: {value!r} is not a number") from None


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def preferred_encodings(accept_encoding: str) -> Sequence[str]:
    """`Accept-Encoding`'s codings, most wanted first (q=0 left out)."""
    ranked = []
    for position, item in enumerate(accept_encoding.split(",")):
        name, _, rest = item.strip().partition(";")
        weight = 1.0
        if rest.strip().startswith("q="):
            try:
                weight = float(rest.strip()[2:])
            except ValueError:
                weight = 0.0
        if name and weight > 0:
            ranked.append((-weight, position, name.strip().lower()))
    return [name for _, _, name in sorted(ranked)]
