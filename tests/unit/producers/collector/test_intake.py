"""Whole requests to outcomes: statuses, messages, events and dead letters."""

from __future__ import annotations

import gzip
from typing import Any

import orjson

from producers.collector.intake import Intake, Outcome, Request
from schemas.deadletter import DeadLetter
from schemas.touchpoint import Touchpoint
from tests.unit.producers.collector.builders import NOW, WEB_KEY, basic, intake, track


def batch(messages: list[Any], **extra: Any) -> bytes:
    return orjson.dumps({"batch": messages, **extra})


def handle(
    body: bytes,
    kind: str = "batch",
    auth: str | None = basic(WEB_KEY),
    *,
    core: Intake | None = None,
    encoding: str | None = None,
    query: str = "",
    at: float = 0.0,
) -> Outcome:
    path = "/v1/batch" if kind == "batch" else f"/v1/{kind}"
    request = Request(kind, path, body, auth, encoding, query)
    return (core or intake()).handle(request, NOW, at)


def events(outcome: Outcome) -> list[Touchpoint]:
    return [Touchpoint.model_validate_json(fragment) for _key, fragment in outcome.events]


def test_a_valid_batch_is_200_with_every_event_keyed_by_identity() -> None:
    out = handle(batch([track(1), track(2)]))
    assert (out.status, out.body) == (200, {"success": True, "accepted": 2})
    assert [key for key, _ in out.events] == ["customer_id:user-1", "customer_id:user-2"]
    assert [e.source for e in events(out)] == ["web-shop", "web-shop"]
    assert out.dead_letters == [] and out.source == "web-shop"


def test_single_call_routes_take_the_call_from_the_path() -> None:
    body = orjson.dumps({"event": "Clicked", "anonymousId": "a", "type": "identify"})
    out = handle(body, kind="track")
    assert out.status == 200 and events(out)[0].event_type == "Clicked"


def test_the_browser_sends_text_bodies_with_the_key_inside() -> None:
    body = orjson.dumps({"writeKey": WEB_KEY, "anonymousId": "a", "properties": {"path": "/"}})
    out = handle(body, kind="page", auth=None)
    assert out.status == 200 and events(out)[0].event_type == "page_view"


def test_the_beacon_sends_the_key_in_the_query() -> None:
    assert handle(batch([track()]), auth=None, query=f"writeKey={WEB_KEY}").status == 200


def test_gzip_bodies_are_accepted() -> None:
    assert handle(gzip.compress(batch([track()])), encoding="gzip").status == 200


def test_some_invalid_calls_publish_the_rest_and_dead_letter_those() -> None:
    body = batch([track(1), {"type": "track", "userId": "u"}, 7, track(2, type="fly")])
    out = handle(body)
    assert out.status == 200 and len(out.events) == 1
    assert out.body["accepted"] == 1
    assert out.body["rejected"] == [
        {
            "index": 1,
            "field": "batch[1].event",
            "reason": "invalid_field",
            "message": "required: the name of the tracked event",
        },
        {
            "index": 2,
            "field": "batch[2]",
            "reason": "not_an_object",
            "message": "expected a JSON object, got int",
        },
        {
            "index": 3,
            "field": "batch[3].type",
            "reason": "invalid_field",
            "message": "must be one of track, identify, page, screen, alias, group",
        },
    ]
    letters = [DeadLetter.model_validate_json(d) for d in out.dead_letters]
    assert [d.source_offset for d in letters] == [1, 2, 3]
    assert {d.stage for d in letters} == {"collector"}
    assert letters[0].source_topic == "http:/v1/batch"
    assert orjson.loads(letters[0].raw) == {"type": "track", "userId": "u"}
    assert letters[0].detail.startswith("source web-shop: batch[1].event")


def test_dead_letters_keep_no_contact_details() -> None:
    bad = {
        "type": "track",
        "userId": "u",
        "traits": {"email": "jane@x.io"},
        "properties": {"note": "call +44 20 7946 0958"},
    }
    out = handle(batch([track(), bad]))
    assert out.status == 200 and len(out.dead_letters) == 1
    assert b"jane@x.io" not in out.dead_letters[0] and b"7946" not in out.dead_letters[0]


def test_nothing_usable_is_400_naming_the_first_field() -> None:
    out = handle(batch([{"type": "track", "userId": "u"}, track(timestamp="never")]))
    assert out.status == 400 and out.events == [] and out.dead_letters == []
    assert out.body["field"] == "batch[0].event"
    assert (
        out.body["message"] == "batch[0].event: required: the name of the tracked event (+1 more)"
    )
    assert [r["field"] for r in out.body["rejected"]] == ["batch[0].event", "batch[1].timestamp"]


def test_a_single_bad_call_names_its_field_without_a_batch_prefix() -> None:
    out = handle(orjson.dumps({"userId": "u"}), kind="track")
    assert (out.status, out.body["field"]) == (400, "event")


def test_oversized_calls_in_a_batch_are_413_when_nothing_else_is_wrong() -> None:
    big = track(properties={"blob": "x" * 40_000})
    out = handle(batch([big]))
    assert out.status == 413 and out.body["code"] == "oversized"
    assert "per call" in out.body["message"]
    mixed = handle(batch([big, track()]))
    assert mixed.status == 200 and mixed.body["rejected"][0]["reason"] == "oversized"


def test_a_body_over_the_limits_is_413() -> None:
    assert handle(b"{" + b" " * 40_000 + b"}", kind="track").status == 413
    huge = batch([track(i, properties={"pad": "x" * 1000}) for i in range(600)])
    out = handle(huge)
    assert out.status == 413 and "500,000 bytes" in out.body["message"]


def test_a_missing_or_unknown_key_is_401() -> None:
    assert handle(batch([track()]), auth=None).status == 401
    out = handle(batch([track()]), auth=basic("wk_nope"))
    assert (out.status, out.body["message"]) == (401, "unknown write key")


def test_an_unknown_header_key_is_refused_before_the_body_is_parsed() -> None:
    assert handle(b"not json", auth=basic("wk_nope")).status == 401
    assert handle(b"not json").status == 400


def test_over_the_rate_is_429_with_when_to_retry() -> None:
    core = intake(rate=10, burst_seconds=1)
    assert handle(batch([track(i) for i in range(8)]), core=core, at=0.0).status == 200
    out = handle(batch([track(i) for i in range(5)]), core=core, at=0.0)
    assert out.status == 429 and out.body["code"] == "rate_limited"
    assert dict(out.headers) == {"Retry-After": "1", "X-RateLimit-Reset": "1"}
    assert "10 events per second" in out.body["message"]
    assert handle(batch([track(i) for i in range(5)]), core=core, at=1.0).status == 200


def test_the_batch_context_applies_to_every_call() -> None:
    ios = {"library": {"name": "analytics-ios"}}
    shared = {"library": {"name": "analytics-android"}, "device": {"id": "d"}}
    body = batch([track(1, context={}), track(2, context=ios)], context=shared)
    first, second = events(handle(body))
    assert first.channel.value == second.channel.value == "app"
    assert first.identity.device_id == second.identity.device_id == "d"


def test_notes_about_changed_properties_come_back_as_warnings() -> None:
    out = handle(batch([track(properties={"text": "x" * 2000})]))
    assert out.status == 200
    assert out.body["warnings"] == [
        {"index": 0, "message": "properties.text: truncated to 1024 characters"}
    ]


def test_no_raw_contact_detail_reaches_an_event() -> None:
    msg = track(
        userId="jane@x.io",
        properties={
            "email": "jane@x.io",
            "msg": "+1 555 123 4567",
            "nested": {"phone": "555 123 4567"},
        },
    )
    out = handle(batch([msg]))
    payload = b"".join(fragment for _key, fragment in out.events)
    for secret in (b"jane@x.io", b"555 123 4567"):
        assert secret not in payload


def test_huge_dead_letter_payloads_are_cut_and_say_so() -> None:
    escaped = '"\\' * 120_000  # every character escaped twice inside a dead letter
    out = handle(batch([track(), {"type": "track", "userId": "u", "blob": escaped}]))
    assert out.status == 200
    (letter,) = [DeadLetter.model_validate_json(d) for d in out.dead_letters]
    assert len(letter.raw) == 256 * 1024
    assert "raw payload cut from" in letter.detail
    assert len(out.dead_letters[0]) < 700_000
