"""The ASGI app speaking ClickHouse's HTTP interface (the collector's stack: uvicorn).

`/` and `/query` run queries (GET reads only, POST also writes); `/ping` and
`/replicas_status` answer `Ok.` as ClickHouse does, for load balancers and drivers; `/metrics`
is the process's Prometheus metrics (the sink's too, when the sink serves). Queries run
in a bounded pool of threads, as many at once as `max_concurrent_queries`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.settings import ClickHouseHttpSettings, ClickHouseUser
from sinks.http import metrics
from sinks.http.core import blocks
from sinks.http.core.access import authenticate
from sinks.http.core.encoding import Encoder, decode, encode, response_coding
from sinks.http.core.errors import QueryError
from sinks.http.core.request import ClickHouseRequest, Insert, Query, parse_request, plan
from sinks.http.engine import Answer, Engine, summary_header
from sinks.http.native import NativeError, at_revision

log = logging.getLogger(__name__)

QUERY_PATHS = frozenset({"/", "/query"})
OK_PATHS = frozenset({"/ping", "/replicas_status"})
DISPLAY_NAME = "journeys"

Scope = dict[str, Any]
Receive = Any
Send = Any


class ClickHouseHttpApp:
    def __init__(self, engine: Engine, settings: ClickHouseHttpSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._pool = ThreadPoolExecutor(
            settings.max_concurrent_queries, thread_name_prefix="clickhouse-http"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics":
            await _respond(
                send, 200, generate_latest(), [(b"Content-Type", CONTENT_TYPE_LATEST.encode())]
            )
            return
        if path in OK_PATHS:
            await _respond(send, 200, b"Ok.\n", [(b"Content-Type", b"text/plain; charset=UTF-8")])
            return
        if path not in QUERY_PATHS:
            await _respond(send, 404, b"There is no handle " + path.encode() + b"\n", [])
            return
        await self._query(scope, receive, send)

    async def _query(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query_id = str(uuid.uuid4())
        kind = "query"
        common: list[tuple[bytes, bytes]] = [
            (b"X-ClickHouse-Server-Display-Name", DISPLAY_NAME.encode()),
            (b"X-ClickHouse-Timezone", self._engine.timezone.encode()),
        ]
        try:
            request = parse_request(
                scope["method"], scope.get("query_string", b"").decode("latin-1"), asked
            )
            query_id = request.query_id or query_id
            body = decode(await _body(receive), request.content_encoding)
            if request.decompress:
                body = blocks.decompress(body)
            user = authenticate(self._settings.users, request.credentials)
            what = plan(request, body)
            kind = "insert" if isinstance(what, Insert) else "query"
            answer = await self._answer(what, user, request)
            revision = request.protocol_revision
            if revision and answer.output_format.lower() == "native":
                answer = await asyncio.get_running_loop().run_in_executor(
                    self._pool, _at_revision, answer, revision
                )
        except QueryError as error:
            metrics.QUERIES.labels(kind, str(error.status)).inc()
            log.info("clickhouse http: %s %s", error.status, error.body().decode().strip()[:300])
            await _respond(
                send,
                error.status,
                error.body(),
                [
                    *common,
                    (b"X-ClickHouse-Query-Id", query_id.encode()),
                    (b"X-ClickHouse-Exception-Code", str(error.code).encode()),
                    (b"Content-Type", b"text/plain; charset=UTF-8"),
                ],
            )
            return
        metrics.QUERIES.labels(kind, "200").inc()
        coding = response_coding(request.http_compression, request.accept_encoding)
        headers = [
            *common,
            *([(b"Content-Encoding", coding.encode())] if coding else []),
            (b"X-ClickHouse-Query-Id", query_id.encode()),
            (b"X-ClickHouse-Format", answer.output_format.encode()),
            (b"X-ClickHouse-Summary", summary_header(answer.summary).encode()),
            (b"Content-Type", content_type(answer.output_format).encode()),
        ]
        if answer.chunks is None:
            payload = blocks.compress(answer.body) if request.compress else answer.body
            await _respond(send, 200, encode(payload, coding), headers)
            return
        await self._stream(send, answer.chunks, headers, Encoder(coding), request.compress)

    async def _stream(
        self,
        send: Send,
        chunks: Iterator[bytes],
        headers: list[tuple[bytes, bytes]],
        encoder: Encoder,
        framed: bool,
    ) -> None:
        """A result sent as the engine produces it (chunked), each piece framed and encoded;
        the engine's handle is given back however the stream ends."""
        loop = asyncio.get_running_loop()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            while (chunk := await loop.run_in_executor(self._pool, next, chunks, None)) is not None:
                piece = encoder.feed(blocks.compress(chunk) if framed else chunk)
                if piece:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": encoder.finish()})
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                await loop.run_in_executor(self._pool, close)

    async def _answer(
        self, what: Query | Insert, user: ClickHouseUser, request: ClickHouseRequest
    ) -> Answer:
        loop = asyncio.get_running_loop()
        kind = "insert" if isinstance(what, Insert) else "query"
        metrics.RUNNING.inc()
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(
                self._pool, lambda: self._engine.run(what, user, request)
            )
        finally:
            metrics.RUNNING.dec()
            metrics.SECONDS.labels(kind).observe(time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._pool.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _at_revision(answer: Answer, revision: int) -> Answer:
    """A Native answer as the client's protocol revision writes it (each streamed piece is
    whole blocks, so it is reframed as it comes)."""
    if answer.chunks is not None:
        return replace(answer, chunks=_reframed(answer.chunks, revision))
    try:
        return replace(answer, body=at_revision(answer.body, revision))
    except NativeError as error:
        raise QueryError.of(48, str(error)) from None


def _reframed(chunks: Iterator[bytes], revision: int) -> Iterator[bytes]:
    try:
        for chunk in chunks:
            yield at_revision(chunk, revision)
    except NativeError as error:
        yield b"\n" + QueryError.of(48, str(error)).body()
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"Content-Length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def content_type(output_format: str) -> str:
    """The media type ClickHouse gives a format's output."""
    name = output_format.lower()
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if name.endswith("eachrow") or name in {"jsonlines", "ndjson"}:
        return "application/x-ndjson; charset=UTF-8"
    if name.startswith("json"):
        return "application/json; charset=UTF-8"
    if name.startswith(("pretty", "vertical", "markdown")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"
