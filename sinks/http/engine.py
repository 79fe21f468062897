"""Running requests on the embedded engine: one chDB handle per request, or per session.

chDB runs queries from several handles of one process in parallel, so analysts read while the
sink inserts. A handle is cheap to open (about 2 ms) and carries its own settings, so a
request's settings and a user's limits never leak into another request. A writer's
`session_id` keeps its handle (and what it SET) until the session has been idle for the
timeout; a read-only user's handle is read-only to the engine and never kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import chdb

from schemas.settings import ClickHouseUser
from sinks.http.core.access import handle_statements, quote, readonly_level
from sinks.http.core.errors import QueryError
from sinks.http.core.request import (
    ClickHouseRequest,
    Insert,
    Query,
    check_reads_only,
    result_format,
    statement_kind,
)

# chDB ships no types: its handles are typed Any here, once.
_connect: Callable[[str], Any] = chdb.connect
# Formats whose results are the concatenation of their blocks' (no header, no footer): these
# stream, the rest are read whole first.
STREAMABLE = frozenset(
    {
        "native",
        "tabseparated",
        "tsv",
        "tabseparatedraw",
        "tsvraw",
        "csv",
        "rowbinary",
        "jsoneachrow",
        "jsonlines",
        "ndjson",
        "jsoncompacteachrow",
        "jsonstringseachrow",
    }
)
# Inserts hand the engine the body in pieces of this size.
INSERT_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Answer:
    body: bytes
    output_format: str
    summary: dict[str, str]
    # A streamed result: its pieces, each read from the engine when asked for (blocking).
    chunks: Iterator[bytes] | None = None


class _Handle:
    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.restore: list[str] = []  # what puts a session's settings back after a request


class Engine:
    """The data folder's handles. Every method blocks: call it from a worker thread."""

    def __init__(self, folder: str, session_timeout_seconds: float) -> None:
        self._folder = folder
        self._session_timeout = session_timeout_seconds
        self._sessions: dict[tuple[str, str], _Handle] = {}
        self._sessions_lock = threading.Lock()
        # Opening the folder here makes a folder another process holds fail at start-up.
        try:
            self._anchor = _connect(folder)
        except Exception as exc:  # chDB's error for a folder another process holds
            raise OSError(
                f"cannot open the embedded ClickHouse folder {folder} "
                f"({str(exc).strip().splitlines()[0][:200]}); another process may hold it"
            ) from None
        self.timezone = self._anchor.query("SELECT timezone()", "TSVRaw").bytes().decode().strip()
        self.version = self._anchor.query("SELECT version()", "TSVRaw").bytes().decode().strip()

    def run(self, plan: Query | Insert, user: ClickHouseUser, request: ClickHouseRequest) -> Answer:
        """Run `plan` for `user` with the request's settings, parameters and session. A result
        in a format whose blocks concatenate comes as `chunks`, read from the engine as the
        client takes them; the handle is released when they end (or are closed)."""
        session_id = request.session_id
        # A handle made read-only cannot be made writable again: it never serves a session.
        keep = session_id is not None and not readonly_level(
            user, request.settings, reads_only=False
        )
        handle = self._session(user.name, session_id) if keep and session_id else None
        fresh = handle is None
        if handle is None:
            handle = _Handle(_connect(self._folder))
            release: Callable[[], None] = handle.connection.close
        else:
            if request.method == "GET" and isinstance(plan, Query):
                check_reads_only(plan.sql)
            if not handle.lock.acquire(blocking=False):
                raise QueryError.of(373, f"Session {session_id} is locked by a concurrent client")
            release = partial(self._give_back, handle)
        try:
            answer = self._on(handle, plan, user, request, fresh=fresh)
        except BaseException:
            release()
            raise
        if answer.chunks is None:
            release()
            return answer
        return replace(answer, chunks=_then(answer.chunks, release))

    def _give_back(self, handle: _Handle) -> None:
        try:
            for statement in handle.restore:
                _engine(partial(handle.connection.query, statement, "TSV"))
        finally:
            handle.restore = []
            handle.last_used = time.monotonic()
            handle.lock.release()

    def _on(
        self,
        handle: _Handle,
        plan: Query | Insert,
        user: ClickHouseUser,
        request: ClickHouseRequest,
        *,
        fresh: bool,
    ) -> Answer:
        conn = handle.connection
        params = request.params or None
        # A request's settings apply to it alone, even on a session's handle (what a session
        # keeps is what its own SET statements set): they are restored when it ends.
        if not fresh:
            handle.restore = _restoring(conn, request.settings)
        statements = handle_statements(
            user, request.settings, reads_only=fresh and request.method == "GET"
        )
        if request.database:
            statements.insert(0, f"USE `{request.database.replace('`', '')}`")
        for statement in statements:
            _engine(partial(conn.query, statement, "TSV"))
        if isinstance(plan, Insert):
            return _insert(conn, plan)
        fmt = result_format(plan.sql, plan.output_format)
        sql, requested = plan.sql, plan.output_format
        streams = statement_kind(sql) in {"SELECT", "WITH"} and fmt.lower() in STREAMABLE
        if streams and not request.wait_end_of_query:
            stream = _engine(lambda: conn.send_query(sql, requested, params=params))
            blocks = iter(stream)
            try:  # an error before the first block still gets its status
                first = next(blocks, None)
            except Exception as exc:
                stream.close()
                raise QueryError.from_engine(_streamed_error(exc)) from None
            chunks = _blocks(stream, blocks, first)
            return Answer(b"", fmt, _summary(None, result_bytes=False), chunks)
        result = _engine(lambda: conn.query(sql, requested, params=params))
        return Answer(bytes(result.bytes()), fmt, _summary(result, result_bytes=True))

    def _session(self, user: str, session_id: str) -> _Handle:
        now = time.monotonic()
        with self._sessions_lock:
            for key, idle in list(self._sessions.items()):
                if now - idle.last_used > self._session_timeout and idle.lock.acquire(False):
                    del self._sessions[key]
                    idle.connection.close()
                    idle.lock.release()
            handle = self._sessions.get((user, session_id))
            if handle is None:
                handle = _Handle(_connect(self._folder))
                self._sessions[(user, session_id)] = handle
            return handle

    def close(self) -> None:
        with self._sessions_lock:
            for handle in self._sessions.values():
                with handle.lock:
                    handle.connection.close()
            self._sessions.clear()
        self._anchor.close()


def _restoring(conn: Any, settings: dict[str, str]) -> list[str]:
    """The SET statements that put `settings` back as they are on this handle now."""
    if not settings:
        return []
    names = ", ".join(quote(name) for name in settings)
    rows = _engine(
        partial(
            conn.query,
            f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})",
            "JSONCompactEachRow",
        )
    )
    restore = []
    for line in bytes(rows.bytes()).splitlines():
        name, value, changed = json.loads(line)
        restore.append(f"SET {name} = {quote(value)}" if changed else f"SET {name} = DEFAULT")
    return restore


def _blocks(stream: Any, blocks: Iterator[Any], first: Any | None) -> Iterator[bytes]:
    """A streamed result's bytes. An error after the first block can no longer change the
    status: like ClickHouse, its text ends the body."""
    try:
        if first is not None:
            yield bytes(first.bytes())
        for block in blocks:
            yield bytes(block.bytes())
    except Exception as exc:  # chDB raises the engine's error while streaming
        yield b"\n" + QueryError.from_engine(_streamed_error(exc)).body()
    finally:
        stream.close()


def _streamed_error(exc: Exception) -> str:
    return str(exc).removeprefix("Streaming query failed: ")


def _then(chunks: Iterator[bytes], release: Callable[[], None]) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        release()


def _insert(conn: Any, plan: Insert) -> Answer:
    def write() -> Any:
        with conn.send_insert(plan.head, plan.data_format) as inserter:
            view = memoryview(plan.data)
            for start in range(0, len(view), INSERT_CHUNK_BYTES):
                inserter.append(bytes(view[start : start + INSERT_CHUNK_BYTES]))
            return inserter.finish()

    result = _engine(write)
    return Answer(b"", plan.data_format, _summary(result, result_bytes=False))


def _engine(call: Callable[[], Any]) -> Any:
    """The engine's answer, or its error as ClickHouse words it."""
    try:
        return call()
    except QueryError:
        raise
    except Exception as exc:  # chDB raises RuntimeError and ChdbError with ClickHouse's text
        raise QueryError.from_engine(str(exc)) from None


def _summary(result: Any | None, result_bytes: bool) -> dict[str, str]:
    """`X-ClickHouse-Summary`: the figures ClickHouse reports (all as strings, as it does)."""

    def figure(name: str) -> float:
        value = getattr(result, name, None)
        return float((value() if callable(value) else value) or 0)

    return {
        "read_rows": str(int(figure("storage_rows_read"))),
        "read_bytes": str(int(figure("storage_bytes_read"))),
        "written_rows": str(int(figure("rows_written"))),
        "written_bytes": str(int(figure("bytes_written"))),
        "total_rows_to_read": "0",
        "result_rows": str(int(figure("rows_read")) if result_bytes else 0),
        "result_bytes": str(int(figure("size")) if result_bytes else 0),
        "elapsed_ns": str(int(figure("elapsed") * 1e9)),
    }


def summary_header(summary: dict[str, str]) -> str:
    return json.dumps(summary, separators=(",", ":"))
