"""The pure mapping of Segment calls to touchpoints (producers/collector/segment.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producers.collector.auth import Source
from producers.collector.segment import (
    NAMESPACE,
    Mapped,
    Rejected,
    event_id_for,
    to_touchpoint,
)
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
