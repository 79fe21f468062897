"""The ASGI app: routes, CORS, health, metrics, body limits and Kafka failures."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from producers.collector.admin import AdminApp
from producers.collector.app import CollectorApp, Message
from tests.unit.producers.collector.builders import (
    WEB_KEY,
    FakeDeliverer,
    app,
    basic,
    call,
    intake,
    track,
)

JSON = {"Content-Type": "application/json"}


def post(application: CollectorApp, path: str, doc: Any, **headers: str) -> Any:
    return call(application, "POST", path, orjson.dumps(doc), {**JSON, **headers})


def test_a_batch_reaches_the_deliverer_before_the_200() -> None:
    deliverer = FakeDeliverer()
    answer = post(
        app(deliverer), "/v1/batch", {"batch": [track(1), track(2)]}, Authorization=basic(WEB_KEY)
    )
    assert answer.status == 200 and answer.json() == {"success": True, "accepted": 2}
    assert len(deliverer.events) == 2


def test_bodies_arriving_in_chunks_are_joined() -> None:
    deliverer = FakeDeliverer()
    body = orjson.dumps({"batch": [track(i) for i in range(20)]})
    answer = call(
        app(deliverer), "POST", "/v1/batch", body, {"Authorization": basic(WEB_KEY)}, chunk=100
    )
    assert answer.status == 200 and len(deliverer.events) == 20


def test_kafka_not_acknowledging_is_503_with_retry_after() -> None:
    answer = post(
        app(FakeDeliverer(fail=True)),
        "/v1/batch",
        {"batch": [track()]},
        Authorization=basic(WEB_KEY),
    )
    assert answer.status == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["code"] == "unavailable"


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    answer = call(app(), "POST", "/v1/track", b"{}", {"Content-Length": "40000"})
    assert answer.status == 413


def test_a_streamed_body_over_the_limit_is_413() -> None:
    answer = call(app(), "POST", "/v1/track", b"x" * 40_000, {}, chunk=1000)
    assert answer.status == 413 and answer.json()["field"] == "body"


def test_unknown_paths_are_404_and_other_methods_405() -> None:
    assert call(app(), "POST", "/v2/track").status == 404
    answer = call(app(), "GET", "/v1/track")
    assert answer.status == 405 and answer.headers["allow"] == "POST, OPTIONS"


def test_browsers_get_a_preflight_and_cors_headers() -> None:
    origin = {"Origin": "https://shop.example"}
    asked = {**origin, "Access-Control-Request-Headers": "content-type"}
    pre = call(app(), "OPTIONS", "/v1/t", headers=asked)
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == "https://shop.example"
    assert pre.headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert pre.headers["access-control-allow-headers"] == "content-type"
    body = {"writeKey": WEB_KEY, "anonymousId": "a", "properties": {"path": "/"}}
    answer = post(app(), "/v1/p", body, **origin, **{"Content-Type": "text/plain"})
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == "https://shop.example"
    assert "X-RateLimit-Reset" in answer.headers["access-control-expose-headers"]


def test_origins_not_listed_get_no_cors_headers() -> None:
    from tests.unit.producers.collector.builders import intake

    only = CollectorApp(intake(), FakeDeliverer(), ["https://a.example"], 5.0)
    answer = call(only, "OPTIONS", "/v1/batch", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers


def test_health_follows_the_deliverer_and_metrics_are_on_the_admin_listener() -> None:
    deliverer = FakeDeliverer()
    application, admin = app(deliverer), AdminApp(deliverer)
    assert call(application, "GET", "/health").status == 503
    assert call(admin, "GET", "/health/live").status == 503
    deliverer.start()
    assert call(application, "GET", "/health").json() == {"status": "ok"}
    assert call(admin, "GET", "/health/live").json() == {"status": "live"}
    post(application, "/v1/batch", {"batch": [track()]}, Authorization=basic(WEB_KEY))
    metrics = call(admin, "GET", "/metrics")
    assert metrics.status == 200
    assert b'journeys_collector_calls_total{outcome="accepted",source="web-shop"}' in metrics.body
    assert call(application, "GET", "/metrics").status == 404


def test_ready_says_why_not_and_is_503_while_draining() -> None:
    deliverer = FakeDeliverer(started=True, not_ready="topic raw is not available")
    admin = AdminApp(deliverer)
    answer = call(admin, "GET", "/health/ready")
    assert answer.status == 503 and answer.json()["reason"] == "topic raw is not available"
    deliverer.not_ready = None
    assert call(admin, "GET", "/health/ready").json() == {"status": "ready"}
    admin.draining = True
    assert call(admin, "GET", "/health/ready").json()["reason"] == "draining"
    assert call(admin, "GET", "/health/live").status == 200


def test_a_body_that_stops_arriving_gets_408_and_the_connection_closed() -> None:
    timed = CollectorApp(intake(), FakeDeliverer(), ["*"], 5.0, request_timeout=0.2)
    body = orjson.dumps({"batch": [track(i) for i in range(20)]})
    answer = call(
        timed, "POST", "/v1/batch", body[:100], {"Authorization": basic(WEB_KEY)}, stall=True
    )
    assert answer.status == 408 and answer.json()["field"] == "body"
    assert answer.headers["connection"] == "close"


def test_lifespan_starts_and_closes_the_deliverer() -> None:
    deliverer = FakeDeliverer()
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message["type"])

    asyncio.run(app(deliverer)({"type": "lifespan"}, receive, send))
    assert deliverer.started and deliverer.closed
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_a_client_that_goes_away_gets_no_answer() -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/batch", "headers": []}
    asyncio.run(app()(scope, receive, send))
    assert sent == []
