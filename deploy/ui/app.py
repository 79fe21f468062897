"""The page as a small ASGI application (served by uvicorn, see `server`), as the collector
is: `GET /` the page, `GET /static/...` its script, style and charting library,
`GET /api/<endpoint>` the JSON each chart draws (`?format=csv`: the same rows as CSV),
`GET /health`. Read-only: any other method is 405. With a token set, `access` decides who
is answered; everyone else gets 401."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from deploy.query.formats import as_csv, as_json
from deploy.ui import access
from deploy.ui.answering import ENDPOINTS, Reply
from deploy.ui.asking import Asked, AskingError, parse
from sinks.clickhouse import ClickHouseUnreachableError, NoJourneysDataError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# endpoint name, what is asked -> the reply (blocking: it reads ClickHouse).
Reader = Callable[[str, Asked], Reply]

STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".md": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",  # the library's LICENSE and NOTICE
}
# Everything the page loads comes from here; ECharts writes style attributes (tooltips).
_SECURITY = (
    (
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, doc: Any, *headers: tuple[str, str]) -> Response:
        return cls(status, orjson.dumps(doc, option=_JSON_OPTIONS), headers=headers)

    async def send(self, send: Send, head_only: bool) -> None:
        headers = [("content-type", self.content_type), *_SECURITY, *self.headers]
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"" if head_only else self.body})


def static_files(folder: Path = STATIC) -> dict[str, Path]:
    """`/static/...` address -> file: only the files the folder holds are ever served."""
    return {
        "/static/" + path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


class UiApp:
    def __init__(self, read: Reader, token: SecretStr | None, static: Path = STATIC) -> None:
        self.read = read
        self.token = token
        self.files = static_files(static)
        self.index = static / "index.html"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            response = await self._http(scope, headers)
        except Exception:  # a bug: the reader answers every question it can not with a message
            log.exception("ui: unexpected error", extra={"path": scope.get("path")})
            response = Response.json(500, {"error": "internal error: see the server's log"})
        await response.send(send, scope["method"] == "HEAD")

    async def _http(self, scope: Scope, headers: dict[str, str]) -> Response:
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        decision = access.decide(self.token, path, query, headers)
        if decision.location is not None and decision.set_cookie is not None:
            location = ("Location", decision.location)
            return Response(303, b"", headers=(location, ("Set-Cookie", decision.set_cookie)))
        if not decision.allowed:
            return Response.json(
                401,
                {"error": "this page needs its token: open it with ?token=<token>"},
                ("WWW-Authenticate", 'Bearer realm="journeys ui"'),
            )
        if method not in ("GET", "HEAD"):
            return Response.json(405, {"error": f"{method}: the page is read-only"}, _ALLOW)
        if path.startswith("/api/"):
            return await self._api(path.removeprefix("/api/"), query)
        return self._file(path)

    def _file(self, path: str) -> Response:
        if path == "/health":
            return Response.json(200, {"status": "ok"})
        found = self.index if path in ("/", "/index.html") else self.files.get(path)
        if found is None:
            return Response.json(404, {"error": f"no page {path}"})
        kind = _TYPES.get(found.suffix, "application/octet-stream")
        return Response(200, found.read_bytes(), kind, (("Cache-Control", "no-cache"),))

    async def _api(self, endpoint: str, query: str) -> Response:
        if endpoint not in ENDPOINTS:
            return Response.json(404, {"error": f"no endpoint {endpoint!r}"})
        try:
            asked = parse(query)
        except AskingError as exc:
            return Response.json(400, {"error": str(exc)})
        try:
            reply = await asyncio.to_thread(self.read, endpoint, asked)
        except NoJourneysDataError as exc:  # nothing to show yet: a message, as for an empty range
            empty: dict[str, Any] = {"columns": [], "rows": [], "chart": None, "message": str(exc)}
            return Response.json(200, empty, _NO_STORE)
        except ClickHouseUnreachableError as exc:
            return Response.json(503, {"error": str(exc)}, _NO_STORE)
        if asked.format == "csv":
            return _csv(endpoint, asked, reply)
        return Response.json(200, _document(reply), _NO_STORE)


_ALLOW = ("Allow", "GET, HEAD")
_NO_STORE = ("Cache-Control", "no-store")


def _document(reply: Reply) -> dict[str, Any]:
    """What the page reads: the rows (a list of objects, as `journeys query --format json`
    writes them), the chart's data, the message when there is nothing to show."""
    return {
        "columns": reply.answer.columns,
        "rows": orjson.Fragment(as_json(reply.answer)),
        "chart": reply.chart,
        "message": reply.message,
        **reply.extra,
    }


def _csv(endpoint: str, asked: Asked, reply: Reply) -> Response:
    if reply.message is not None and not reply.answer.rows:
        return Response(404, reply.message.encode(), "text/plain; charset=utf-8", (_NO_STORE,))
    span = "-".join(_safe(v) for v in (asked.since, asked.until) if v)
    name = f"journeys-{endpoint}{'-' + span if span else ''}.csv"
    disposition = ("Content-Disposition", f'attachment; filename="{name}"')
    body = (as_csv(reply.answer) + "\n").encode()
    return Response(200, body, "text/csv; charset=utf-8", (disposition, _NO_STORE))


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() else "" for c in text)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
