"""Webhook delivery against a real local HTTP server: every record arrives once per
idempotency key through failures, in order; what cannot be delivered reaches the dead
letters with its reason; 4xx is final except 408, 425 and 429; submit never waits. And the
pure parts: the backoff schedule, answers, Retry-After, and the two bodies."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from schemas.alerting import WebhookTarget
from stream_processors.friction.alerts.core.bodies import json_body, slack_body
from stream_processors.friction.alerts.core.incident_records import Incident
from stream_processors.friction.alerts.core.retry import (
    RetryPolicy,
    backoff_delay,
    next_wait,
    parse_retry_after,
    verdict,
)
from stream_processors.friction.alerts.webhooks import FailedDelivery, WebhookSender
from tests.unit.friction.alerts.builders import closed, make_alert, tracker

FAST = RetryPolicy(max_attempts=10, max_elapsed=10.0, base_delay=0.01, max_delay=0.05, timeout=2.0)
Answer = tuple[int, dict[str, str]]
Serve = Callable[[Callable[[int], Answer]], tuple["Receiver", str]]


@dataclass
class Receiver:
    """A real HTTP server on a free port. `answer(n)` says how to answer the n-th request
    (from 0); every request is recorded, whatever the answer."""

    answer: Callable[[int], Answer]
    requests: list[tuple[float, str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append(
                        (time.monotonic(), self.path, dict(self.headers), body)
                    )
                status, headers = receiver.answer(n)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": "2"}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet tests

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return server

    def keys(self) -> list[str]:
        return [headers["Idempotency-Key"] for _, _, headers, _ in self.requests]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[int], Answer]) -> tuple[Receiver, str]:
        receiver = Receiver(answer)
        server = receiver.start()
        servers.append(server)
        return receiver, f"http://127.0.0.1:{server.server_address[1]}/hooks/t0ken"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def target(url: str, format: str = "json") -> WebhookTarget:
    return WebhookTarget.model_validate({"format": format, "url": SecretStr(url)})


def records(count: int) -> list[Incident]:
    """`count` versions of one incident (firing, then updated)."""
    (first,) = tracker().process([make_alert(10)], closed(10))
    return [replace(first, version=v, observed=30 + v) for v in range(1, count + 1)]


def sender(
    policy: RetryPolicy = FAST,
    *,
    queue_size: int = 10_000,
    on_count: Callable[[str], None] | None = None,
) -> tuple[WebhookSender, list[FailedDelivery]]:
    dead: list[FailedDelivery] = []
    return WebhookSender(policy, dead.append, queue_size=queue_size, on_count=on_count), dead


# -- delivery ---------------------------------------------------------------------------------


def test_every_record_arrives_once_per_key_through_failures(serve: Serve) -> None:
    # The first three requests are taken in, but answered 500: the answer was "lost".
    receiver, url = serve(lambda n: (500, {}) if n < 3 else (200, {}))
    counted: list[str] = []
    webhooks, dead = sender(on_count=counted.append)
    sent = records(5)
    assert all(webhooks.submit(target(url), r) for r in sent)
    assert webhooks.close(timeout=10) == 0
    wanted = [f"{r.incident_id}:{r.version}" for r in sent]
    assert list(dict.fromkeys(receiver.keys())) == wanted  # each arrived, in order
    assert len(receiver.requests) == 5 + 3  # the repeats the receiver drops by key
    bodies: dict[str, bytes] = {}
    for _, path, headers, body in receiver.requests:
        key = headers["Idempotency-Key"]
        assert bodies.setdefault(key, body) == body  # a retry is the same request
        assert json.loads(body)["idempotency_key"] == key
        assert path == "/hooks/t0ken" and headers["Content-Type"] == "application/json"
    assert (webhooks.delivered, webhooks.retried, webhooks.failed) == (5, 3, 0)
    assert sorted(counted) == ["delivered"] * 5 + ["retried"] * 3
    assert dead == []


def test_a_slack_target_gets_the_slack_body(serve: Serve) -> None:
    receiver, url = serve(lambda n: (200, {}))
    webhooks, _ = sender()
    (record,) = records(1)
    webhooks.submit(target(url, "slack"), record)
    webhooks.close(timeout=5)
    ((_, _, headers, body),) = receiver.requests
    assert set(json.loads(body)) == {"text", "blocks"}
    assert headers["Idempotency-Key"] == f"{record.incident_id}:1"


def test_what_cannot_be_delivered_in_time_is_dead_lettered(serve: Serve) -> None:
    receiver, url = serve(lambda n: (503, {}))
    policy = replace(FAST, max_elapsed=0.3)
    webhooks, dead = sender(policy)
    sent = records(2)
    for record in sent:
        webhooks.submit(target(url), record)
    started = time.monotonic()
    assert webhooks.close(timeout=10) == 0
    assert time.monotonic() - started < 3
    assert [d.idempotency_key for d in dead] == [f"{r.incident_id}:{r.version}" for r in sent]
    for failed in dead:
        assert failed.reason.startswith("gave up after") and "HTTP 503" in failed.reason
        assert failed.attempts >= 2 and failed.incident["incident_id"] == sent[0].incident_id
        assert failed.endpoint.startswith("http://127.0.0.1:") and "t0ken" not in failed.endpoint
        json.dumps(failed.to_dict())  # ready for the dead-letter topic
    assert (webhooks.delivered, webhooks.failed) == (0, 2)
    assert len(receiver.requests) == sum(d.attempts for d in dead)


@pytest.mark.parametrize(
    ("status", "headers", "delivered"),
    [
        (400, {}, False),  # the request is wrong: retrying cannot help
        (401, {}, False),  # a revoked token
        (404, {}, False),
        (302, {"Location": "http://127.0.0.1:9/elsewhere"}, False),  # not followed
        (408, {}, True),
        (429, {"Retry-After": "0"}, True),
        (502, {}, True),
    ],
)
def test_which_answers_are_retried(
    serve: Serve, status: int, headers: dict[str, str], delivered: bool
) -> None:
    receiver, url = serve(lambda n: (status, headers) if n == 0 else (200, {}))
    webhooks, dead = sender()
    webhooks.submit(target(url), records(1)[0])
    webhooks.close(timeout=5)
    assert webhooks.delivered == int(delivered)
    assert len(receiver.requests) == (2 if delivered else 1)
    if not delivered:
        (failed,) = dead
        assert failed.reason.startswith(f"HTTP {status}") and "not retried" in failed.reason
        assert failed.attempts == 1


def test_retry_after_is_a_floor_under_the_backoff(serve: Serve) -> None:
    receiver, url = serve(lambda n: (429, {"Retry-After": "1"}) if n == 0 else (200, {}))
    webhooks, _ = sender()
    webhooks.submit(target(url), records(1)[0])
    webhooks.close(timeout=5)
    (first, *_), (second, *_) = receiver.requests
    assert second - first >= 0.9  # not FAST's 0.05 s


def test_an_endpoint_that_does_not_answer_is_retried_then_dead_lettered() -> None:
    webhooks, dead = sender(replace(FAST, max_attempts=3))
    webhooks.submit(target("http://127.0.0.1:9/closed"), records(1)[0])  # discard port
    webhooks.close(timeout=10)
    (failed,) = dead
    assert failed.attempts == 3 and "no answer" in failed.reason
    assert webhooks.retried == 2


# -- never blocking -----------------------------------------------------------------------------


def test_submit_returns_at_once_while_the_receiver_hangs(serve: Serve) -> None:
    release = threading.Event()
    _, url = serve(lambda n: (200, {}) if release.wait(10) else (500, {}))
    webhooks, dead = sender()
    started = time.monotonic()
    for record in records(3):
        assert webhooks.submit(target(url), record)
    assert time.monotonic() - started < 0.5
    assert webhooks.queued == 3
    release.set()
    assert webhooks.close(timeout=10) == 0
    assert webhooks.delivered == 3 and dead == []


def test_a_full_queue_dead_letters_at_once(serve: Serve) -> None:
    release = threading.Event()
    _, url = serve(lambda n: (200, {}) if release.wait(10) else (500, {}))
    webhooks, dead = sender(queue_size=2)
    first, second, third = records(3)
    assert webhooks.submit(target(url), first) and webhooks.submit(target(url), second)
    assert not webhooks.submit(target(url), third)
    assert [(d.idempotency_key, d.attempts) for d in dead] == [(f"{third.incident_id}:3", 0)]
    assert dead[0].reason.startswith("queue full")
    release.set()
    webhooks.close(timeout=10)
    assert webhooks.delivered == 2


def test_close_stops_waiting_after_its_timeout(serve: Serve) -> None:
    _, url = serve(lambda n: (500, {}))
    webhooks, dead = sender(replace(FAST, base_delay=0.2, max_delay=1.0, max_elapsed=60.0))
    for record in records(3):
        webhooks.submit(target(url), record)
    started = time.monotonic()
    assert webhooks.close(timeout=0.3) == 2  # the two behind the one retrying
    assert time.monotonic() - started < 2.5
    reasons = sorted(d.reason.split(";")[0] for d in dead)
    assert reasons == ["not delivered before shutdown"] * 2 + ["shut down while retrying"]
    assert not webhooks.submit(target(url), records(1)[0])  # closed
    assert dead[-1].reason == "the webhook sender is closed"


# -- the schedule -------------------------------------------------------------------------------

POLICY = RetryPolicy(base_delay=0.5, max_delay=8.0, jitter=0.5, max_attempts=6, max_elapsed=20.0)


@pytest.mark.parametrize(
    ("retry", "full"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (500, 8.0)]
)
def test_backoff_doubles_up_to_its_cap_and_jitter_only_shortens(retry: int, full: float) -> None:
    assert backoff_delay(POLICY, retry, 0.0) == full
    assert backoff_delay(POLICY, retry, 0.999) == pytest.approx(full * (1 - 0.5 * 0.999))


def test_next_wait_stops_at_the_attempts_or_the_time() -> None:
    assert next_wait(POLICY, attempts=5, elapsed=0.0, draw=0.0) == 8.0
    assert next_wait(POLICY, attempts=6, elapsed=0.0, draw=0.0) is None  # six made
    assert next_wait(POLICY, attempts=3, elapsed=18.5, draw=0.0) is None  # 2 s would pass 20
    assert next_wait(POLICY, attempts=3, elapsed=18.5, draw=0.9) == pytest.approx(1.1)
    assert next_wait(POLICY, attempts=1, elapsed=0.0, draw=0.0, retry_after=3.0) == 3.0
    assert next_wait(POLICY, attempts=1, elapsed=0.0, draw=0.0, retry_after=60.0) is None


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (None, "retry"),
        (200, "delivered"),
        (204, "delivered"),
        (301, "reject"),
        (400, "reject"),
        (403, "reject"),
        (408, "retry"),
        (425, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
    ],
)
def test_verdicts(status: int | None, said: str) -> None:
    assert verdict(status) == said


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("²", now) is None  # a digit to str.isdigit, not to float()
    assert parse_retry_after(None, now) is None


def test_a_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)


# -- bodies -------------------------------------------------------------------------------------


def test_the_json_body_is_the_incident_with_its_key() -> None:
    (record,) = records(1)
    body = json_body(replace(record, team="payments", cause="card_declined rose"))
    assert body["type"] == "journeys.incident" and body["v"] == 1
    assert body["idempotency_key"] == f"{record.incident_id}:1"
    assert body["incident"]["team"] == "payments" and body["incident"]["status"] == "firing"
    assert Incident.from_dict(body["incident"]) == replace(
        record, team="payments", cause="card_declined rose"
    )


def test_the_slack_body_says_what_and_escapes() -> None:
    (record,) = records(1)
    record = replace(record, team="pay<ments>", cause="a & b", explanation="x" * 5000)
    body = slack_body(record)
    assert body["text"].startswith(":rotating_light: [FIRING] warning friction spike: ")
    assert "payment_declined at web /checkout" in body["text"]
    assert "pay&lt;ments&gt;" in body["text"]
    header, explanation, facts, cause, context = body["blocks"]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert len(explanation["text"]["text"]) == 3000
    assert {"type": "mrkdwn", "text": "*Team*\npay&lt;ments&gt;"} in facts["fields"]
    assert cause["text"]["text"] == "*Likely cause:* a &amp; b"
    assert f"{record.incident_id}:1" in context["elements"][0]["text"]
    resolved = slack_body(
        replace(record, status="resolved", resolved_at=datetime(2025, 3, 3, 1, tzinfo=UTC))
    )
    assert resolved["text"].startswith(":white_check_mark: [RESOLVED]")
    assert {"type": "mrkdwn", "text": "*Resolved*\n2025-03-03 01:00 UTC"} in resolved["blocks"][2][
        "fields"
    ]
