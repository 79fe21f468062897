"""The collector as a small ASGI application (served by uvicorn, see `server`).

`POST` on the tracking routes (`protocol.ROUTES`), `OPTIONS` preflight for browsers and
`GET /health` (live or not, for probes that can only reach this port; readiness and metrics
are on the admin listener, `admin`). The request logic is `intake` (pure); this module reads
bodies (408 when one does not arrive in time), waits for Kafka through a `Deliverer`, and
writes answers. Only a request's own events are waited for; 200 means Kafka has every
accepted event and dead letter of that request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from producers.collector import metrics
from producers.collector.delivery import DeliveryError
from producers.collector.intake import Intake, Outcome, Request
from producers.collector.protocol import ROUTES, HttpError, too_large

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = "application/json"
_LABELLED = frozenset({*ROUTES, "/health"})
_EXPOSED = "Retry-After, X-RateLimit-Reset"
_DEFAULT_ALLOWED_HEADERS = "Content-Type, Authorization, Content-Encoding"


class Deliverer(Protocol):
    """Kafka in production (`delivery.KafkaDelivery`), a list in tests."""

    def start(self) -> None: ...

    async def close(self) -> None: ...

    def healthy(self) -> bool: ...

    async def ready(self, timeout: float) -> str | None: ...

    async def deliver(
        self,
        events: list[tuple[str, bytes]],
        dead_letters: list[bytes],
        dead_key: str,
        timeout: float,
        history: bool = False,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, doc: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        return cls(status, orjson.dumps(doc), _JSON, headers)

    async def send(self, send: Send, extra: list[tuple[str, str]]) -> None:
        headers = [("content-type", self.content_type), *self.headers, *extra]
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


class CollectorApp:
    def __init__(
        self,
        intake: Intake,
        deliverer: Deliverer,
        cors_origins: list[str],
        ack_timeout: float,
        *,
        request_timeout: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.intake = intake
        self.deliverer = deliverer
        self.cors_any = "*" in cors_origins
        self.cors_origins = frozenset(cors_origins)
        self.ack_timeout = ack_timeout
        self.request_timeout = request_timeout
        self.clock = clock
        self.monotonic = monotonic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            response = await self._http(scope, headers, receive)
        except Exception:  # a bug, not bad input: the property tests hold no input gets here
            log.exception("collector: unexpected error", extra={"path": scope.get("path")})
            response = Response.json(
                500, {"success": False, "code": "internal", "message": "internal error"}
            )
        if response is None:  # the client went away
            return
        route = scope["path"] if scope["path"] in _LABELLED else "other"
        metrics.REQUESTS.labels(route, str(response.status)).inc()
        await response.send(send, self._cors(headers.get("origin")))

    async def _http(
        self, scope: Scope, headers: dict[str, str], receive: Receive
    ) -> Response | None:
        method, path = scope["method"], scope["path"]
        kind = ROUTES.get(path)
        if kind is None or method != "POST":
            return self._not_collecting(method, path, headers)
        try:
            async with asyncio.timeout(self.request_timeout):
                body = await _read_body(receive, headers, self.intake.limits.for_wire(kind))
        except HttpError as err:
            return Response.json(err.status, err.body(), err.headers)
        except TimeoutError:  # a body trickled in, or stalled: free the connection
            metrics.TIMEOUTS.inc()
            return Response.json(
                408,
                {
                    "success": False,
                    "code": "request_timeout",
                    "field": "body",
                    "message": f"the body did not arrive within {self.request_timeout:g} s",
                },
                (("Connection", "close"),),
            )
        if body is None:
            return None
        request = Request(
            kind,
            path,
            body,
            headers.get("authorization"),
            headers.get("content-encoding"),
            scope.get("query_string", b"").decode("latin-1"),
            _peer(scope),
        )
        return await self._collect(request)

    async def _collect(self, request: Request) -> Response:
        outcome = self.intake.handle(request, self.clock(), self.monotonic())
        _count(outcome)
        if outcome.events or outcome.dead_letters:
            started = time.perf_counter()
            try:
                await self.deliverer.deliver(
                    outcome.events,
                    outcome.dead_letters,
                    outcome.source,
                    self.ack_timeout,
                    history=outcome.history,
                )
            except DeliveryError as exc:
                log.error("collector: Kafka did not take a request's events: %s", exc)
                return Response.json(
                    503,
                    {
                        "success": False,
                        "code": "unavailable",
                        "message": "Kafka did not acknowledge the events; retry",
                    },
                    (("Retry-After", "5"),),
                )
            metrics.ACK_SECONDS.observe(time.perf_counter() - started)
        return Response.json(outcome.status, outcome.body, outcome.headers)

    def _not_collecting(self, method: str, path: str, headers: dict[str, str]) -> Response:
        """Everything but a tracking POST: health, metrics, preflight, 404 and 405."""
        if path == "/health" and method == "GET":
            ok = self.deliverer.healthy()
            return Response.json(200 if ok else 503, {"status": "ok" if ok else "unavailable"})
        if path not in ROUTES:
            return Response.json(
                404, {"success": False, "code": "not_found", "message": f"no route {path}"}
            )
        if method == "OPTIONS":
            return self._preflight(headers)
        return Response.json(
            405,
            {
                "success": False,
                "code": "method_not_allowed",
                "message": f"{method} {path}: use POST",
            },
            (("Allow", "POST, OPTIONS"),),
        )

    def _cors(self, origin: str | None) -> list[tuple[str, str]]:
        if not origin or not (self.cors_any or origin in self.cors_origins):
            return []
        return [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Expose-Headers", _EXPOSED),
            ("Vary", "Origin"),
        ]

    def _preflight(self, headers: dict[str, str]) -> Response:
        asked = headers.get("access-control-request-headers") or _DEFAULT_ALLOWED_HEADERS
        return Response(
            204,
            b"",
            _JSON,
            (
                ("Access-Control-Allow-Methods", "POST, OPTIONS"),
                ("Access-Control-Allow-Headers", asked),
                ("Access-Control-Max-Age", "86400"),
            ),
        )

    def startup(self) -> None:
        """Start delivering; call from the event loop that serves."""
        self.deliverer.start()

    async def shutdown(self) -> None:
        """Send what is queued and wait for Kafka's answers."""
        await self.deliverer.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes | None:
    """The whole body, refusing early (413) past `limit`; None if the client disconnected."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large("the request body", limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large("the request body", limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _count(outcome: Outcome) -> None:
    if outcome.source:
        metrics.CALLS.labels(outcome.source, "accepted").inc(len(outcome.events))
        metrics.CALLS.labels(outcome.source, "rejected").inc(len(outcome.rejected))
    for rejection in outcome.rejected:
        metrics.REJECTED.labels(rejection.problem.reason).inc()
