"""The HTTP collector against the real broker, fed by the real Segment and RudderStack SDKs:
events land on `raw` with the right channel, identifiers and event types, refused calls land
on the ingest dead-letter topic, and no raw e-mail address or phone number reaches Kafka."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from rudderstack.analytics import Client as RudderClient
from segment import analytics

from producers.pii import PiiHasher
from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics
from tests.integration.helpers import (
    basic_auth,
    free_port,
    get,
    journeys,
    post,
    read_all,
    reap,
    start_collector,
    terminate,
)

pytestmark = pytest.mark.integration

WEB_KEY, APP_KEY = "wk_it_web", "wk_it_app"
SOURCES = {
    WEB_KEY: {"name": "web-shop", "channel": "web"},
    APP_KEY: {"name": "shop-app", "channel": "app"},
}
EMAIL, PHONE = "Jane.Doe@example.com", "+44 20 7946 0958"
RAW_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+(@|%40)[A-Za-z0-9-]+\.[A-Za-z]{2,}")
RAW_PHONE = re.compile(rb"7946[ -]?0958")


ADMIN: dict[int, int] = {}  # a collector's port -> its admin listener's


@pytest.fixture
def collector(settings: Settings, tmp_path: Path) -> Iterator[int]:
    """A `journeys collector` process on a free port; stopped with SIGTERM, as in production."""
    port, log = free_port(), tmp_path / "collector.log"
    ADMIN[port] = free_port()
    proc = start_collector(
        settings,
        port,
        SOURCES,
        log,
        JOURNEYS_LOG_LEVEL="INFO",
        JOURNEYS_COLLECTOR__ADMIN_PORT=str(ADMIN[port]),
    )
    try:
        yield port
        # SIGTERM drains: requests in flight finish, Kafka is flushed, the exit code is 0.
        assert terminate(proc, 30) == 0, log.read_text()
        assert "collector: stopped" in log.read_text()
    finally:
        reap(proc)


def send_with_segment(port: int) -> None:
    """analytics-python as an application uses it; only the host changes."""
    errors: list[Exception] = []
    analytics.write_key = WEB_KEY
    analytics.host = f"http://127.0.0.1:{port}"
    analytics.on_error = lambda error, _batch: errors.append(error)
    analytics.max_retries = 1
    try:
        analytics.identify(
            "user-1", {"email": EMAIL, "phone": PHONE, "plan": "gold"}, anonymous_id="anon-1"
        )
        url = "https://shop.example/?e=jane%40x.io"
        analytics.page(anonymous_id="anon-1", name="Home", properties={"path": "/home", "url": url})
        analytics.track(
            "user-1",
            "Order Completed",
            {"total": 42.5, "items": [{"sku": "s1"}], "note": f"call me on {PHONE}"},
            anonymous_id="anon-1",
        )
        analytics.screen("user-1", name="Basket", context={"os": {"name": "iOS"}})
        analytics.flush()
    finally:
        analytics.shutdown()
        analytics.default_client = None
    assert errors == []


def send_with_rudderstack(port: int) -> None:
    """rudder-sdk-python: gzip bodies, traits in context.traits, an app source."""
    client = RudderClient(APP_KEY, host=f"http://127.0.0.1:{port}", gzip=True, sync_mode=True)
    client.identify(user_id="user-2", traits={"email": "sam@example.org"}, anonymous_id="dev-2")
    client.track(user_id="user-2", event="Cart Viewed", properties={"items": 3})
    client.alias(previous_id="anon-7", user_id="user-2")


def raw_events(settings: Settings) -> tuple[list[dict[str, Any]], bytes]:
    records = read_all(settings, Topics.from_settings(settings.topics).raw)
    values = [value for _key, value in records if value is not None]
    events = [event for value in values for event in envelope.decode(value).events]
    return events, b"".join(values)


def test_sdks_reach_raw_with_channels_identifiers_and_no_contact_details(
    settings: Settings, collector: int
) -> None:
    send_with_segment(collector)
    send_with_rudderstack(collector)
    events, raw = raw_events(settings)
    by_type = {e["event_type"]: e for e in events}
    assert (
        sorted(by_type)
        == sorted(
            ["identify", "page_view", "Order Completed", "screen_view", "Cart Viewed", "alias"]
        )
        and len(events) == 7
    )
    hasher = PiiHasher(settings.pii)

    identify = next(
        e for e in events if e["source"] == "web-shop" and e["event_type"] == "identify"
    )
    assert identify["channel"] == "web"
    assert identify["identity"]["customer_id"] == "user-1"
    assert identify["identity"]["anonymous_id"] == "anon-1"
    assert identify["identity"]["email_hash"] == hasher.email(EMAIL)
    assert identify["identity"]["phone_hash"] == hasher.phone(PHONE)
    assert identify["properties"] == {"plan": "gold"}

    page = by_type["page_view"]
    assert (page["channel"], page["touchpoint"], page["identity"]["anonymous_id"]) == (
        "web",
        "/home",
        "anon-1",
    )
    order = by_type["Order Completed"]
    assert order["properties"]["total"] == 42.5 and order["properties"]["items"] == '[{"sku":"s1"}]'
    assert by_type["screen_view"]["channel"] == "app"  # context.os says iOS
    assert by_type["screen_view"]["touchpoint"] == "Basket"

    rudder = [e for e in events if e["source"] == "shop-app"]
    assert {e["channel"] for e in rudder} == {"app"} and len(rudder) == 3
    sam = next(e for e in rudder if e["event_type"] == "identify")
    assert sam["identity"]["email_hash"] == hasher.email("sam@example.org")
    alias = by_type["alias"]["identity"]
    assert (alias["anonymous_id"], alias["customer_id"]) == ("anon-7", "user-2")

    assert len({e["event_id"] for e in events}) == len(events)
    assert RAW_EMAIL.search(raw) is None, RAW_EMAIL.search(raw)
    assert RAW_PHONE.search(raw) is None


def test_partly_bad_batches_dead_letter_the_bad_calls_and_refusals_say_why(
    settings: Settings, collector: int
) -> None:
    auth = {"Authorization": basic_auth(WEB_KEY), "Content-Type": "application/json"}
    good = {"type": "track", "event": "Viewed", "userId": "u-9", "messageId": "m-1"}
    bad = {"type": "track", "userId": "u-9", "traits": {"email": "leak@example.com"}}
    status, body = post(collector, "/v1/batch", {"batch": [good, bad]}, auth)
    assert status == 200 and body["accepted"] == 1
    assert body["rejected"] == [
        {
            "index": 1,
            "field": "batch[1].event",
            "reason": "invalid_field",
            "message": "required: the name of the tracked event",
        }
    ]
    status, body = post(collector, "/v1/batch", {"batch": [bad]}, auth)
    assert (status, body["field"]) == (400, "batch[0].event")
    status, body = post(collector, "/v1/track", good, {"Content-Type": "application/json"})
    assert (status, body["code"]) == (401, "unauthorized")

    records = read_all(settings, Topics.from_settings(settings.topics).dlq_ingest)
    letters = [orjson.loads(v) for _k, v in records if v is not None]
    assert len(letters) == 1
    assert (letters[0]["stage"], letters[0]["reason"]) == ("collector", "invalid_field")
    assert b"leak@example.com" not in b"".join(v for _k, v in records if v is not None)
    events, _raw = raw_events(settings)
    assert [e["event_type"] for e in events] == ["Viewed"]
    status, metrics = get(ADMIN[collector], "/metrics")
    assert status == 200 and b"journeys_collector_rejected_total" in metrics


def test_the_collector_refuses_to_start_without_kafka(tmp_path: Path) -> None:
    env_settings = Settings(kafka={"bootstrap_servers": "127.0.0.1:1"}, data_dir=tmp_path)
    proc = journeys(env_settings, "collector", "--port", str(free_port()), log=tmp_path / "c.log")
    assert proc.wait(60) == 2
    assert "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS" in (tmp_path / "c.log").read_text()
