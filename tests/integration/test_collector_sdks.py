"""Identity and context from real SDK calls, end to end: the Segment and
RudderStack SDKs for Python and for Node (`make setup` installs the Node ones into
.local/node-sdks) send identify, page, screen and track calls whose traits carry a loyalty
card, through `journeys collector`, ingest, identity, journeys and the sink into ClickHouse.
A store sale identified only by that loyalty card, published later as a till export would
be, stitches to the same person as the customer's web and app events, and their purchase
journey converts in store. Each event is stored once, with its identifiers, touchpoint and
attribution."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import orjson
import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from producers.files import publisher
from producers.pii import PiiHasher
from producers.simulator.runner import send_heartbeats
from schemas.settings import PiiSettings, Settings
from schemas.topics import Topics
from schemas.touchpoint import Touchpoint
from sinks.clickhouse import session
from stream_processors.identity.core.records import person_id

from .helpers import (
    ROOT,
    drain,
    free_port,
    journeys,
    read_all,
    reap,
    stage_topics,
    start_collector,
    stop,
    terminate,
    wait_for,
)

pytestmark = pytest.mark.integration

NODE_SDKS = ROOT / ".local" / "node-sdks" / "node_modules"
NODE_SENDER = ROOT / "tests" / "integration" / "node_sdks" / "send.js"
KEYS = {
    "py_web": {"name": "web-shop-py", "channel": "web"},
    "py_app": {"name": "shop-app-py", "channel": "app"},
    # The Node web source keeps the client's address, truncated (never raw).
    "node_web": {"name": "web-shop-node", "channel": "web", "ip": "truncate"},
    "node_app": {"name": "shop-app-node", "channel": "app"},
}
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
LANDING = (
    "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
    "&gclid=abc123&email=jane%40example.com"
)
REDUCED = "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
REFERRER = "https://mail.example/inbox?id=77"
Event = dict[str, Any]  # one row of touchpoints_latest, by column
HASHER = PiiHasher(PiiSettings())
# The calls' event times: hours ago, so the test's heartbeat closes them all.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)


def at(minutes: int) -> datetime:
    return BASE + timedelta(minutes=minutes)


def web_context(agent: str) -> dict[str, Any]:
    return {"userAgent": agent, "page": {"url": LANDING, "path": "/", "referrer": REFERRER}}


def app_context(device: str, screen: str) -> dict[str, Any]:
    return {"device": {"id": device}, "os": {"name": "iOS"}, "screen": {"name": screen}}


# -- the Python SDKs: customer A -------------------------------------------------------------


def send_with_python_sdks(port: int) -> None:
    errors: list[Any] = []
    host = f"http://127.0.0.1:{port}"
    web = SegmentClient(
        "py_web", host=host, sync_mode=True, max_retries=1, on_error=lambda e, _b: errors.append(e)
    )
    ctx = web_context(CHROME)
    web.identify(
        "cust-a",
        {"email": "ann@example.com", "loyalty_id": "LA-1001", "plan": "gold"},
        context=ctx,
        timestamp=at(0),
        anonymous_id="anon-a",
    )
    web.page(anonymous_id="anon-a", name="Home", context=ctx, timestamp=at(1))
    web.track("cust-a", "home_view", {"ref": "x"}, context=ctx, timestamp=at(2))
    web.track("cust-a", "product_view", {"sku": "espresso"}, context=ctx, timestamp=at(5))
    web.track("cust-a", "add_to_cart", {"sku": "espresso"}, context=ctx, timestamp=at(8))
    app = RudderClient(
        "py_app", host=host, sync_mode=True, max_retries=1, on_error=lambda e, _b: errors.append(e)
    )
    app.identify(
        user_id="cust-a",
        traits={"loyalty_card": "LA-1001"},
        context=app_context("dev-a", "Login"),
        timestamp=at(9),
    )
    app.screen(
        user_id="cust-a", name="Basket", context=app_context("dev-a", "Basket"), timestamp=at(10)
    )
    app.track(
        user_id="cust-a",
        event="checkout_step",
        properties={"step": 1},
        context=app_context("dev-a", "Payment"),
        timestamp=at(12),
    )
    assert errors == []


# -- the Node SDKs: customer B ---------------------------------------------------------------


def node_plan(sdk: str, key: str, port: int, calls: list[dict[str, Any]]) -> dict[str, Any]:
    for call in calls:
        call["timestamp"] = call["timestamp"].isoformat()
    return {"sdk": sdk, "writeKey": key, "host": f"http://127.0.0.1:{port}", "calls": calls}


def send_with_node(plan: dict[str, Any]) -> None:
    node = shutil.which("node")
    assert node, "node is needed to run the Node SDKs"
    assert NODE_SDKS.is_dir(), "run `make setup` (it installs the Node SDKs into .local)"
    done = subprocess.run(
        [node, str(NODE_SENDER)],
        input=orjson.dumps(plan),
        capture_output=True,
        env={**os.environ, "NODE_PATH": str(NODE_SDKS)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def send_with_node_sdks(port: int) -> None:
    ctx = web_context(IPHONE)
    web_calls: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": "cust-b",
            "anonymousId": "anon-b",
            "traits": {"phone": "+44 20 7946 0958", "loyaltyId": "LB-2002"},
            "context": ctx,
            "timestamp": at(20),
        },
        {
            "type": "page",
            "anonymousId": "anon-b",
            "name": "Home",
            "context": ctx,
            "timestamp": at(21),
        },
        {
            "type": "track",
            "userId": "cust-b",
            "event": "home_view",
            "context": ctx,
            "timestamp": at(22),
        },
        {
            "type": "track",
            "userId": "cust-b",
            "event": "product_view",
            "properties": {"sku": "grinder"},
            "context": ctx,
            "timestamp": at(24),
        },
    ]
    send_with_node(node_plan("segment", "node_web", port, web_calls))
    app_calls: list[dict[str, Any]] = [
        {
            "type": "screen",
            "userId": "cust-b",
            "name": "Product",
            "context": app_context("dev-b", "Product"),
            "timestamp": at(26),
        },
        {
            "type": "track",
            "userId": "cust-b",
            "event": "add_to_cart",
            "properties": {"screen": "Product"},
            "context": {"device": {"id": "dev-b"}, "os": {"name": "iOS"}},
            "timestamp": at(27),
        },
        {
            "type": "track",
            "userId": "cust-b",
            "event": "checkout_step",
            "context": app_context("dev-b", "Payment"),
            "timestamp": at(29),
        },
    ]
    send_with_node(node_plan("rudderstack", "node_app", port, app_calls))


# -- the store -------------------------------------------------------------------------------


def store_sale(card: str, when: datetime) -> Touchpoint:
    """A till export's sale, as the store adapter writes it, identified only by the card."""
    return Touchpoint.model_validate(
        {
            "event_id": str(uuid5(NAMESPACE_URL, f"pos-retail:{card}")),
            "channel": "store",
            "source": "pos-retail",
            "event_type": "pos_purchase",
            "schema_version": 2,
            "occurred_at": when,
            "identity": {"loyalty_id": card},
            "touchpoint": "store:017",
            "store": {"store_id": "017", "amount": 129.0, "currency": "EUR", "items": 1},
        }
    )


def map_knows(settings: Settings, *cards: str) -> Callable[[], bool]:
    topic = Topics.from_settings(settings.topics).identity_map

    def known() -> bool:
        keys = b"".join(key or b"" for key, _value in read_all(settings, topic))
        return all(card.encode() in keys for card in cards)

    return known


# -- the test --------------------------------------------------------------------------------


def test_real_sdks_identity_touchpoints_attribution_and_a_store_sale_by_loyalty_card(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    log = tmp_path / "pipeline.log"
    port = free_port()
    collector = start_collector(settings, port, KEYS, tmp_path / "collector.log")
    processes.append(collector)
    try:
        send_with_python_sdks(port)
        send_with_node_sdks(port)
    finally:
        assert terminate(collector, 30) == 0
        reap(collector)

    stages = [journeys(settings, "process", s, log=log) for s in ("ingest", "identity")]
    processes += stages
    drain(settings, stage_topics(settings, "ingest", "identity"), stages, log)
    # The till export arrives once the customers' calls are stitched, as a late batch does.
    wait_for(map_knows(settings, "LA-1001", "LB-2002"), 60, "the loyalty cards in the map")
    pub = publisher(settings)
    pub.publish_many([store_sale("LA-1001", at(40)), store_sale("LB-2002", at(50))])
    pub.flush()
    send_heartbeats(settings, int(datetime.now(UTC).timestamp() * 1000))

    later = [
        journeys(settings, "process", "journeys", log=log),
        journeys(settings, "sink", log=log),
    ]
    processes += later
    everything = stage_topics(settings, "ingest", "identity", "journeys", "sink")
    drain(settings, everything, stages + later, log)
    stop(stages + later, log)

    with session(settings.clickhouse_dsn) as ch:
        rows = ch.query(
            "SELECT toString(event_id), source, channel, event_type, schema_version, "
            "identity.customer_id, identity.loyalty_id, identity.email_hash, identity.phone_hash, "
            "touchpoint, attribution.page_url, attribution.referrer, attribution.utm_source, "
            "attribution.utm_campaign, attribution.user_agent_family, attribution.device_class, "
            "attribution.ip, latest_person_id FROM touchpoints_latest"
        ).named_results()
        events = list(rows)
        plain = ch.query("SELECT count() FROM touchpoints").result_rows[0][0]
        journeys_rows = ch.query(
            "SELECT latest_person_id, definition_id, status, "
            "tupleElement(arrayElement(stages, -1), 1), tupleElement(arrayElement(stages, -1), 3) "
            "FROM journeys_latest WHERE status != 'merged'"
        ).result_rows

    # Once each: 8 Python calls, 7 Node calls, 2 store sales.
    assert plain == len(events) == len({e["toString(event_id)"] for e in events}) == 17
    by = {(e["source"], e["event_type"]): e for e in events}
    check_identifiers(by)
    check_touchpoints(by, events)
    check_attribution(events)
    check_persons_and_journeys(events, journeys_rows)


def check_identifiers(by: dict[tuple[str, str], Event]) -> None:
    """Identifiers from the traits: loyalty_id, loyaltyId and loyalty_card all count."""
    identify_a = by[("web-shop-py", "identify")]
    assert (identify_a["identity.customer_id"], identify_a["identity.loyalty_id"]) == (
        "cust-a",
        "LA-1001",
    )
    assert identify_a["identity.email_hash"] == HASHER.email("ann@example.com")
    identify_b = by[("web-shop-node", "identify")]
    assert identify_b["identity.loyalty_id"] == "LB-2002"
    assert identify_b["identity.phone_hash"] == HASHER.phone("+44 20 7946 0958")
    assert by[("shop-app-py", "identify")]["identity.loyalty_id"] == "LA-1001"  # loyalty_card


def check_touchpoints(by: dict[tuple[str, str], Event], events: list[Event]) -> None:
    """The page's path on the web, the screen in the apps."""
    assert by[("web-shop-py", "page_view")]["touchpoint"] == "/"
    assert by[("shop-app-py", "screen_view")]["touchpoint"] == "Basket"
    assert by[("shop-app-py", "checkout_step")]["touchpoint"] == "Payment"
    assert by[("shop-app-node", "screen_view")]["touchpoint"] == "Product"
    assert by[("shop-app-node", "add_to_cart")]["touchpoint"] == "Product"
    assert all(e["touchpoint"] for e in events)


def check_attribution(events: list[Event]) -> None:
    """On every web call, typed; the app calls carry none (version 1 or 2)."""
    for source, agent_family, device in (
        ("web-shop-py", "Chrome", "desktop"),
        ("web-shop-node", "Mobile Safari", "mobile"),
    ):
        web = [e for e in events if e["source"] == source]
        assert web and all(e["schema_version"] == 3 for e in web)
        for e in web:
            assert e["attribution.page_url"] == REDUCED
            assert e["attribution.referrer"] == "https://mail.example/inbox"
            assert (e["attribution.utm_source"], e["attribution.utm_campaign"]) == (
                "newsletter",
                "spring",
            )
            assert (e["attribution.user_agent_family"], e["attribution.device_class"]) == (
                agent_family,
                device,
            )
    assert {e["attribution.ip"] for e in events if e["source"] == "web-shop-node"} == {"127.0.0.0"}
    assert all(e["attribution.ip"] is None for e in events if e["source"] != "web-shop-node")
    assert all(e["schema_version"] < 3 for e in events if e["channel"] != "web")


def check_persons_and_journeys(events: list[Event], journeys_rows: Sequence[Sequence[Any]]) -> None:
    """One person per customer across web, app and store; each purchase converts in store."""
    person_a, person_b = person_id("customer_id:cust-a"), person_id("customer_id:cust-b")
    persons: dict[str, set[tuple[str, str]]] = {}
    for e in events:
        persons.setdefault(e["latest_person_id"], set()).add((e["channel"], e["source"]))
    assert set(persons) == {person_a, person_b}
    assert {c for c, _s in persons[person_a]} == {"web", "app", "store"}
    assert {c for c, _s in persons[person_b]} == {"web", "app", "store"}

    purchases = {
        (p, status, stage, channel)
        for p, d, status, stage, channel in journeys_rows
        if d == "purchase"
    }
    assert purchases == {
        (person_a, "converted", "purchase", "store"),
        (person_b, "converted", "purchase", "store"),
    }
