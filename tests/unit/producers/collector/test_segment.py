"""The pure mapping of Segment calls to touchpoints (producers/collector/segment.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producers.collector import wire
from producers.collector.auth import Source
from producers.collector.rules import SourceRules
from producers.collector.segment import (
    NAMESPACE,
    Mapped,
    Rejected,
    _document,
    event_id_for,
    to_touchpoint,
)
from schemas.settings import CollectorSource
from schemas.touchpoint import Channel
from tests.unit.producers.collector.builders import HASHER, NOW, SCRUBBER, WEB, received, track


def mapped(msg: dict[str, Any], call: str | None = None, source: Source = WEB) -> Mapped:
    return to_touchpoint(msg, call or msg["type"], received(source), SCRUBBER)


def rejected(msg: dict[str, Any], call: str | None = None) -> tuple[str, str, str]:
    with pytest.raises(Rejected) as caught:
        mapped(msg, call)
    p = caught.value.problem
    return p.field, p.message, p.reason


def test_track_maps_every_field() -> None:
    event = mapped(track(1, context={"device": {"id": "dev-1"}, "sessionId": 17})).event
    assert event.event_type == "Product Viewed"
    assert event.source == "web-shop" and event.channel is Channel.WEB
    assert event.identity.customer_id == "user-1"
    assert event.identity.anonymous_id == "anon-1"
    assert event.identity.device_id == "dev-1"
    assert event.session_id == "17"
    assert event.occurred_at == datetime(2025, 3, 1, 11, 59, tzinfo=UTC)
    assert event.received_at == NOW
    assert event.properties == {"sku": "sku-1", "price": 9.5}


def test_uuid_message_id_is_the_event_id() -> None:
    given = str(uuid.uuid4())
    assert str(mapped(track(messageId=given)).event.event_id) == given


def test_other_message_ids_give_a_deterministic_uuid5_per_write_key() -> None:
    first = mapped(track(messageId="ajs-next-123")).event.event_id
    again = mapped(track(messageId="ajs-next-123", timestamp=None)).event.event_id
    assert first == again == uuid.uuid5(NAMESPACE, "wk_web:ajs-next-123")
    other_key = Source("wk_other", "web-shop", Channel.WEB)
    assert mapped(track(messageId="ajs-next-123"), source=other_key).event.event_id != first


def test_without_message_id_the_content_decides_and_sending_metadata_does_not() -> None:
    msg = track(messageId=None)
    assert event_id_for("k", msg) == event_id_for("k", {**msg, "sentAt": "2025-03-01T12:00Z"})
    assert event_id_for("k", msg) != event_id_for("k", {**msg, "event": "Other"})


def test_original_timestamp_is_corrected_for_client_clock_skew() -> None:
    # The client's clock is 10 minutes fast: it stamped the call 1 minute before sending.
    msg = track(timestamp=None, originalTimestamp="2025-03-01T12:09:00Z")
    msg["sentAt"] = "2025-03-01T12:10:00Z"
    assert mapped(msg).event.occurred_at == NOW - timedelta(minutes=1)


def test_batch_level_sent_at_is_used_for_the_correction() -> None:
    msg = track(timestamp=None, originalTimestamp="2025-03-01T12:09:00Z")
    rx = received(sent_at="2025-03-01T12:10:00Z")
    assert to_touchpoint(msg, "track", rx, SCRUBBER).event.occurred_at == NOW - timedelta(minutes=1)


def test_no_time_at_all_means_the_time_of_receipt_and_naive_times_are_utc() -> None:
    assert mapped(track(timestamp=None)).event.occurred_at == NOW
    naive = mapped(track(timestamp="2025-03-01T10:00:00")).event.occurred_at
    assert naive == datetime(2025, 3, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [(12345, "expected an ISO-8601 date-time string"), ("yesterday", "is not an ISO-8601")],
)
def test_bad_timestamps_name_the_field(timestamp: Any, message: str) -> None:
    field, text, reason = rejected(track(timestamp=timestamp))
    assert field == "timestamp" and message in text and reason == "invalid_field"


def test_future_timestamps_beyond_the_tolerance_are_refused() -> None:
    field, text, reason = rejected(track(timestamp="2025-03-01T12:10:00Z"))
    assert (field, reason) == ("timestamp", "future_timestamp")
    assert "ahead of the collector's clock" in text
    assert mapped(track(timestamp="2025-03-01T12:04:00Z")).event  # within 5 minutes


def test_page_is_a_page_view_at_its_path() -> None:
    msg = {
        "type": "page",
        "anonymousId": "a",
        "name": "Home",
        "category": "Shop",
        "properties": {"path": "/home", "title": "Welcome"},
    }
    event = mapped(msg).event
    assert (event.event_type, event.touchpoint) == ("page_view", "/home")
    assert event.properties == {
        "path": "/home",
        "title": "Welcome",
        "name": "Home",
        "category": "Shop",
    }


def test_page_path_falls_back_to_the_context_page() -> None:
    msg = {"type": "page", "anonymousId": "a", "context": {"page": {"path": "/ctx"}}}
    assert mapped(msg).event.touchpoint == "/ctx"


def test_screen_is_a_screen_view_at_its_name() -> None:
    event = mapped({"type": "screen", "userId": "u", "name": "Cart"}).event
    assert (event.event_type, event.touchpoint) == ("screen_view", "Cart")


def test_track_happens_at_the_page_the_sdk_reports() -> None:
    assert mapped(track(context={"page": {"path": "/checkout"}})).event.touchpoint == "/checkout"


def test_identify_links_user_and_anonymous_ids_and_hashes_contacts() -> None:
    traits = {"email": " Jane@Example.com ", "phone": "+44 20 7946 0958", "plan": "gold"}
    msg = {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": traits}
    event = mapped(msg).event
    assert event.event_type == "identify"
    assert (event.identity.customer_id, event.identity.anonymous_id) == ("u1", "a1")
    assert event.identity.email_hash == HASHER.email("jane@example.com")
    assert event.identity.phone_hash == HASHER.phone("+44 20 7946 0958")
    assert event.properties == {"plan": "gold"}


def test_rudderstack_identify_traits_in_the_context_count_too() -> None:
    msg = {
        "type": "identify",
        "userId": "u1",
        "context": {"traits": {"email": "jane@example.com", "tier": 2}},
    }
    event = mapped(msg).event
    assert event.identity.email_hash == HASHER.email("jane@example.com")
    assert event.properties == {"tier": 2}


def test_context_traits_give_identifiers_on_other_calls_but_no_properties() -> None:
    event = mapped(track(context={"traits": {"email": "j@x.io", "name": "Jane"}})).event
    assert event.identity.email_hash == HASHER.email("j@x.io")
    assert "name" not in event.properties and "email" not in event.properties


def test_alias_links_the_previous_id_as_anonymous_id() -> None:
    event = mapped({"type": "alias", "previousId": "anon-9", "userId": "u9"}).event
    assert event.event_type == "alias"
    assert (event.identity.anonymous_id, event.identity.customer_id) == ("anon-9", "u9")


def test_group_keeps_the_group_id_and_traits() -> None:
    msg = {"type": "group", "userId": "u", "groupId": "acme", "traits": {"employees": 40}}
    event = mapped(msg).event
    assert event.event_type == "group"
    assert event.properties == {"employees": 40, "group_id": "acme"}


def test_a_second_email_is_dropped_with_a_note() -> None:
    msg = track(properties={"email": "a@x.io"}, context={"traits": {"email": "b@x.io"}})
    result = mapped(msg)
    assert result.event.identity.email_hash == HASHER.email("a@x.io")
    assert any("a second email" in note for note in result.notes)


def test_numeric_ids_become_text_and_empty_ones_are_absent() -> None:
    event = mapped(track(userId=42, anonymousId="")).event
    assert (event.identity.customer_id, event.identity.anonymous_id) == ("42", None)


def test_a_call_without_any_identifier_names_the_fields() -> None:
    field, text, _ = rejected(track(userId=None, anonymousId=None))
    assert field == "userId" and "userId, anonymousId" in text


def test_track_needs_an_event_name() -> None:
    assert rejected(track(event="  "))[:2] == ("event", "required: the name of the tracked event")


def test_too_long_values_name_the_client_field() -> None:
    assert rejected(track(userId="u" * 300))[0] == "userId"
    assert rejected(track(event="e" * 200))[0] == "event"
    assert rejected({"type": "alias", "previousId": "p" * 300, "userId": "u"})[0] == "previousId"


def test_long_touchpoints_are_truncated_with_a_note() -> None:
    result = mapped({"type": "page", "anonymousId": "a", "properties": {"path": "/" + "p" * 300}})
    assert result.event.touchpoint is not None and len(result.event.touchpoint) == 128
    assert any("touchpoint: truncated" in note for note in result.notes)


@pytest.mark.parametrize(
    ("context", "top", "expected"),
    [
        ({"library": {"name": "analytics-ios"}}, {}, Channel.APP),
        ({"library": {"name": "analytics-android"}}, {}, Channel.APP),
        ({"os": {"name": "iOS"}}, {}, Channel.APP),
        ({"device": {"type": "android"}}, {}, Channel.APP),
        ({}, {"channel": "mobile"}, Channel.APP),
        ({"library": {"name": "analytics.js"}}, {}, Channel.WEB),
        ({"library": {"name": "analytics-python"}}, {}, Channel.WEB),
    ],
)
def test_context_refines_a_digital_sources_channel(
    context: dict[str, Any], top: dict[str, Any], expected: Channel
) -> None:
    assert mapped(track(context=context, **top)).event.channel is expected


def test_app_source_with_a_browser_library_is_web() -> None:
    app = Source("wk_app", "shop-app", Channel.APP)
    msg = track(context={"library": {"name": "analytics.js"}})
    assert mapped(msg, source=app).event.channel is Channel.WEB
    assert mapped(track(context={}), source=app).event.channel is Channel.APP


def test_call_center_and_store_sources_keep_their_channel() -> None:
    for channel in (Channel.CALL_CENTER, Channel.STORE):
        source = Source("k", "staff", channel)
        msg = track(context={"library": {"name": "analytics-ios"}, "os": {"name": "iOS"}})
        assert mapped(msg, source=source).event.channel is channel


# -- identifiers from traits and properties, touchpoints per channel, attribution ------------

APP = Source("wk_app", "shop-app", Channel.APP)


def with_rules(**declared: Any) -> Source:
    rules = SourceRules.from_settings(CollectorSource(name="web-shop", channel="web", **declared))
    return Source("wk_web", "web-shop", Channel.WEB, rules)


@pytest.mark.parametrize("trait", ["loyalty_id", "loyaltyId", "loyalty_card"])
@pytest.mark.parametrize("where", ["traits", "context.traits"])
def test_identify_takes_the_loyalty_card_out_of_the_traits(trait: str, where: str) -> None:
    traits = {trait: "L0936602", "plan": "gold"}
    msg: dict[str, Any] = {"type": "identify", "userId": "u1"}
    if where == "traits":
        msg["traits"] = traits
    else:
        msg["context"] = {"traits": traits}
    event = mapped(msg).event
    assert (event.identity.customer_id, event.identity.loyalty_id) == ("u1", "L0936602")
    assert event.properties == {"plan": "gold"}


def test_track_takes_identifiers_from_properties_and_context_traits() -> None:
    msg = track(
        properties={"loyaltyId": 123456, "sku": "s"},
        context={"traits": {"phone": "+44 20 7946 0958"}},
    )
    event = mapped(msg).event
    assert event.identity.loyalty_id == "123456"
    assert event.identity.phone_hash == HASHER.phone("+44 20 7946 0958")
    assert event.properties == {"sku": "s"}


def test_a_source_declares_its_own_identifier_traits() -> None:
    source = with_rules(identifiers={"member_no": "loyalty_id", "crm_id": "customer_id"})
    msg = {"type": "identify", "anonymousId": "a1", "traits": {"member_no": "M-7", "crm_id": "c-9"}}
    identity = mapped(msg, source=source).event.identity
    assert (identity.loyalty_id, identity.customer_id, identity.anonymous_id) == (
        "M-7",
        "c-9",
        "a1",
    )
    assert mapped(msg).event.properties == {"member_no": "M-7", "crm_id": "c-9"}  # not declared


def test_the_calls_own_ids_win_over_traits_with_a_note() -> None:
    source = with_rules(identifiers={"crm_id": "customer_id"})
    result = mapped(
        {"type": "identify", "userId": "u1", "traits": {"crm_id": "c-9"}}, source=source
    )
    assert result.event.identity.customer_id == "u1"
    assert "traits.crm_id: differs from the call's customer_id; dropped" in result.notes


def test_a_second_loyalty_card_is_dropped_with_a_note() -> None:
    msg = {"type": "identify", "userId": "u", "traits": {"loyalty_id": "L1", "loyalty_card": "L2"}}
    result = mapped(msg)
    assert result.event.identity.loyalty_id == "L1"
    assert any("a second loyalty_id" in note for note in result.notes)


def test_a_groups_traits_are_the_groups_and_never_the_persons_identifiers() -> None:
    msg = {"type": "group", "userId": "u", "groupId": "acme", "traits": {"loyalty_id": "G1"}}
    event = mapped(msg).event
    assert event.identity.loyalty_id is None and event.properties["loyalty_id"] == "G1"


def test_a_loyalty_card_alone_identifies_a_call() -> None:
    msg = track(userId=None, anonymousId=None, properties={"loyalty_card": "L5"})
    assert mapped(msg).event.identity.loyalty_id == "L5"


def test_an_overlong_trait_identifier_is_dropped_with_a_note_not_refused() -> None:
    result = mapped(track(properties={"loyalty_id": "L" * 300}))
    assert result.event.identity.loyalty_id is None
    assert any("longer than 256" in note for note in result.notes)


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (
            {
                "type": "track",
                "event": "Viewed",
                "userId": "u",
                "context": {"screen": {"name": "Cart"}},
            },
            "Cart",
        ),
        (
            {"type": "track", "event": "Viewed", "userId": "u", "properties": {"screen": "Search"}},
            "Search",
        ),
        ({"type": "identify", "userId": "u", "context": {"screen": {"name": "Login"}}}, "Login"),
        ({"type": "screen", "userId": "u", "name": "Basket"}, "Basket"),
    ],
)
def test_app_calls_happen_at_their_screen(msg: dict[str, Any], expected: str) -> None:
    assert mapped(msg, source=APP).event.touchpoint == expected


def test_a_source_declares_where_its_events_happen() -> None:
    source = with_rules(touchpoint={"web": ["properties.step"]})
    assert (
        mapped(track(properties={"step": "payment"}), source=source).event.touchpoint == "payment"
    )


def test_attribution_makes_a_version_3_event_and_the_rest_stay_version_1() -> None:
    agent = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36"
    )
    context = {
        "page": {"url": "https://shop.example/sale?utm_source=news&sid=42", "path": "/sale"},
        "userAgent": agent,
        "ip": "203.0.113.9",
    }
    event = mapped(track(context=context)).event
    assert event.schema_version == 3 and event.touchpoint == "/sale"
    assert event.attribution is not None
    assert event.attribution.page_url == "https://shop.example/sale?utm_source=news"
    assert (event.attribution.utm_source, event.attribution.ip) == ("news", None)
    assert (event.attribution.user_agent_family, event.attribution.device_class) == (
        "Chrome",
        "desktop",
    )
    assert mapped(track()).event.schema_version == 1
    kept = with_rules(query_allowlist=["sid"], ip="truncate")
    event = mapped(track(context=context), source=kept).event
    assert event.attribution is not None
    assert event.attribution.page_url == "https://shop.example/sale?utm_source=news&sid=42"
    assert event.attribution.ip == "203.0.113.0"


def test_attributed_calls_take_the_fast_path_with_the_models_bytes() -> None:
    context = {
        "campaign": {"name": "spring"},
        "userAgent": "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) Mobile/15E148",
    }
    msg = track(messageId=str(uuid.uuid4()), context=context)
    doc, _notes = _document(msg, "track", received(), SCRUBBER)
    encoded = wire.encode(doc)
    assert encoded is not None
    event = to_touchpoint(msg, "track", received(), SCRUBBER).event
    assert encoded == (event.identity.partition_key(), event.model_dump_json().encode())
