"""Builders shared by the collector's unit and property tests: an intake, an app with a
fake deliverer, and a tiny ASGI driver (no HTTP client needed)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from producers.collector.app import CollectorApp, Message, Receive, Scope, Send
from producers.collector.auth import Source, Sources
from producers.collector.delivery import DeliveryError
from producers.collector.intake import Intake
from producers.collector.protocol import Limits
from producers.collector.ratelimit import RateLimiter
from producers.collector.scrub import Scrubber
from producers.collector.segment import Received
from producers.pii import PiiHasher
from schemas.settings import CollectorSource, PiiSettings
from schemas.touchpoint import Channel

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HASHER = PiiHasher(PiiSettings())
SCRUBBER = Scrubber(HASHER)
WEB_KEY, APP_KEY, CALL_KEY = "wk_web", "wk_app", "wk_call"
SOURCES = {
    WEB_KEY: CollectorSource(name="web-shop", channel="web"),
    APP_KEY: CollectorSource(name="shop-app", channel="app"),
    CALL_KEY: CollectorSource(name="contact-center", channel="call_center"),
}
WEB = Source(WEB_KEY, "web-shop", Channel.WEB)


def received(source: Source = WEB, sent_at: Any = None) -> Received:
    return Received(source, NOW, timedelta(minutes=5), sent_at)


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def intake(rate: float = 1_000_000.0, burst_seconds: float = 1.0) -> Intake:
    return Intake(
        Sources(SOURCES),
        Limits(max_event_bytes=32_768, max_batch_bytes=500_000),
        RateLimiter(rate, burst_seconds),
        SCRUBBER,
        timedelta(minutes=5),
    )


def track(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A track call as analytics-python sends it in a batch."""
    msg: dict[str, Any] = {
        "type": "track",
        "event": "Product Viewed",
        "userId": f"user-{n}",
        "anonymousId": f"anon-{n}",
        "messageId": f"msg-{n}",
        "timestamp": "2025-03-01T11:59:00+00:00",
        "properties": {"sku": f"sku-{n}", "price": 9.5},
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
    }
    msg.update(overrides)
    return msg


@dataclass
class FakeDeliverer:
    """Keeps what would go to Kafka; `fail` makes every delivery fail as Kafka might."""

    events: list[tuple[str, bytes]] = field(default_factory=list)
    history: list[tuple[str, bytes]] = field(default_factory=list)  # `/v1/import`'s events
    dead_letters: list[bytes] = field(default_factory=list)
    fail: bool = False
    started: bool = False
    closed: bool = False
    not_ready: str | None = None  # what `ready` says is wrong

    def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    def healthy(self) -> bool:
        return self.started and not self.closed

    async def ready(self, timeout: float) -> str | None:
        return self.not_ready

    async def deliver(
        self,
        events: list[tuple[str, bytes]],
        dead_letters: list[bytes],
        dead_key: str,
        timeout: float,
        history: bool = False,
    ) -> None:
        if self.fail:
            raise DeliveryError("broker down")
        if history:
            self.history += events
            self.dead_letters += dead_letters
            return
        self.events += events
        self.dead_letters += dead_letters


def app(deliverer: FakeDeliverer | None = None, **intake_args: Any) -> CollectorApp:
    return CollectorApp(
        intake(**intake_args),
        deliverer or FakeDeliverer(),
        ["*"],
        5.0,
        clock=lambda: NOW,
        monotonic=lambda: 0.0,
    )


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def call(
    application: Asgi,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    query: bytes = b"",
    chunk: int = 65_536,
    stall: bool = False,
) -> Answer:
    """One request through the ASGI app, the body sent in chunks as a server would;
    `stall`: the client then sends nothing more and never finishes."""
    return asyncio.run(
        _call(
            application,
            method,
            path,
            body,
            headers=headers or {},
            query=query,
            chunk=chunk,
            stall=stall,
        )
    )


async def _call(
    application: Asgi,
    method: str,
    path: str,
    body: bytes,
    *,
    headers: dict[str, str],
    query: bytes,
    chunk: int,
    stall: bool,
) -> Answer:
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    incoming = [
        {"type": "http.request", "body": part, "more_body": stall or i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[Message] = []

    async def receive() -> dict[str, Any]:
        if not incoming and stall:
            await asyncio.Event().wait()  # never set: a client that stopped sending
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await application(scope, receive, send)
    start = sent[0]
    return Answer(
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
    )
