"""Invariants of the collector: no input gets a 5xx, every refusal says what is wrong, and
valid calls become touchpoints that mean the same thing."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from producers.collector.protocol import CALLS, ROUTES
from producers.collector.scrub import contact_kind
from producers.collector.segment import event_id_for
from schemas.touchpoint import Touchpoint
from tests.unit.producers.collector.builders import (
    APP_KEY,
    CALL_KEY,
    NOW,
    SOURCES,
    WEB_KEY,
    Answer,
    FakeDeliverer,
    app,
    basic,
    call,
)

DOCUMENTED = {400, 401, 404, 405, 413, 415, 429}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=12,
)
times = st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat())
field_values = {
    "type": st.sampled_from([*CALLS, "fly"]) | json_values,
    "event": st.text(max_size=150) | json_values,
    "userId": st.text(max_size=300) | st.integers(-(2**63), 2**63 - 1) | json_values,
    "anonymousId": st.text(max_size=20) | json_values,
    "previousId": st.text(max_size=20),
    "messageId": st.uuids().map(str) | st.text(max_size=20) | json_values,
    "timestamp": times | json_values,
    "originalTimestamp": times,
    "sentAt": times | json_values,
    "name": st.text(max_size=200) | json_values,
    "properties": st.dictionaries(st.text(max_size=140), json_values, max_size=70) | json_values,
    "traits": st.dictionaries(st.sampled_from(["email", "phone", "plan", ""]), json_values),
    "context": st.fixed_dictionaries(
        {},
        optional={
            "library": st.fixed_dictionaries({"name": json_values}),
            "device": st.fixed_dictionaries({"id": json_values, "type": json_values}),
            "os": json_values,
            "page": json_values,
            "traits": json_values,
            "sessionId": json_values,
        },
    )
    | json_values,
}
segmentish = st.fixed_dictionaries({}, optional=field_values)
big_calls = st.integers(30_000, 40_000).map(
    lambda n: {"type": "track", "event": "e", "userId": "u", "properties": {"p": "x" * n}}
)
batches = st.lists(segmentish | json_values | big_calls, max_size=8)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(orjson.dumps),
    segmentish.map(orjson.dumps),
    batches.map(lambda b: orjson.dumps({"batch": b})),
    batches.map(lambda b: orjson.dumps({"batch": b})),
    big_calls.map(orjson.dumps),
)
# Weighted towards requests that get past routing and auth, where most of the logic is.
auths = st.sampled_from(
    [
        None,
        basic(WEB_KEY),
        basic(WEB_KEY),
        basic(WEB_KEY),
        basic(CALL_KEY),
        basic("nope"),
        "Bearer x",
        "Basic %%%",
        "Basic ",
    ]
)
paths = st.sampled_from(
    [*sorted(ROUTES), "/health", "/metrics", "/", "/v1/batch/", "/v2/track", "/V1/TRACK"]
)
methods = st.sampled_from(["POST"] * 6 + ["GET", "OPTIONS", "PUT"])
encodings = st.sampled_from([None, None, None, "gzip", "br", "identity"])


@settings(FAST, max_examples=300)
@given(methods, paths, bodies, auths, encodings)
def test_no_input_gets_a_5xx_and_refusals_say_why(
    method: str, path: str, body: bytes, auth: str | None, encoding: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    if encoding:
        headers["Content-Encoding"] = encoding
        if encoding == "gzip" and len(body) % 2:  # half of them really gzipped
            body = gzip.compress(body)
    # Twice to one app with a small rate: the second of a big request is over the rate.
    application = app(FakeDeliverer(started=True), rate=3.0)
    for _attempt in range(2):
        check_answer(call(application, method, path, body, headers))


def check_answer(answer: Answer) -> None:
    assert answer.status < 500, answer.body
    event(f"status {answer.status}")
    if answer.status in (200, 204):
        return
    assert answer.status in DOCUMENTED, answer.status
    doc = answer.json()
    assert doc["success"] is False and doc["code"] and doc["message"]
    if answer.status in (400, 413, 415):
        assert doc["field"], doc
    if answer.status == 401:
        assert "write key" in doc["message"] or "Authorization" in doc["message"]
    if answer.status == 429:
        assert int(answer.headers["retry-after"]) >= 1


@FAST
@given(st.lists(segmentish, min_size=1, max_size=6))
def test_partial_batches_list_every_refused_call_by_index(messages: list[dict[str, Any]]) -> None:
    deliverer = FakeDeliverer(started=True)
    body = orjson.dumps({"batch": messages})
    answer = call(app(deliverer), "POST", "/v1/batch", body, {"Authorization": basic(WEB_KEY)})
    assert answer.status in (200, 400, 413)
    event(f"status {answer.status}")
    doc = answer.json()
    rejected = doc.get("rejected", [])
    accepted = doc.get("accepted", 0)
    assert accepted + len(rejected) == len(messages)
    assert len(deliverer.events) == accepted and len(deliverer.dead_letters) == (
        len(rejected) if answer.status == 200 else 0
    )
    for r in rejected:
        assert r["field"].startswith(f"batch[{r['index']}]") and r["message"] and r["reason"]


safe_text = st.text("abcdefghijklmnopqrstuvwxyz ABC_-", min_size=1, max_size=30).filter(
    lambda s: s.strip() == s and s
)
# The loyalty card's documented names (docs/stages/ingest.md), which case, `_`, `-`, `.` and
# spaces do not change: such a key is an identifier, not a property.
LOYALTY_NAMES = frozenset({"loyaltyid", "loyaltycard"})


def identifier_name(key: str) -> bool:
    return re.sub(r"[\s_\-.]", "", key).lower() in LOYALTY_NAMES or contact_kind(key) is not None


flat_properties = st.dictionaries(
    safe_text.filter(lambda k: not identifier_name(k)),
    safe_text | st.integers(-1000, 1000) | st.booleans() | st.none(),
    max_size=10,
)
valid_calls = st.fixed_dictionaries(
    {
        "type": st.sampled_from(CALLS),
        "userId": safe_text,
        "anonymousId": safe_text,
        "previousId": safe_text,
        "messageId": st.uuids().map(str),
        "event": safe_text,
        "name": safe_text,
        "groupId": safe_text,
        "timestamp": st.integers(0, 10**6).map(lambda s: (NOW - timedelta(seconds=s)).isoformat()),
        "properties": flat_properties,
        "traits": flat_properties,
    }
)


def expected_properties(msg: dict[str, Any]) -> dict[str, Any]:
    call_type = msg["type"]
    if call_type == "track":
        return {**msg["properties"]}
    if call_type in ("page", "screen"):
        return {"name": msg["name"], **msg["properties"]}
    if call_type == "identify":
        return {**msg["traits"]}
    if call_type == "group":
        return {"group_id": msg["groupId"], **msg["traits"]}
    return {}


@FAST
@given(st.lists(valid_calls, min_size=1, max_size=10), st.sampled_from([WEB_KEY, APP_KEY]))
def test_valid_batches_map_to_touchpoints_of_the_same_meaning(
    messages: list[dict[str, Any]], key: str
) -> None:
    deliverer = FakeDeliverer(started=True)
    body = orjson.dumps({"batch": messages})
    answer = call(app(deliverer), "POST", "/v1/batch", body, {"Authorization": basic(key)})
    assert (answer.status, answer.json()) == (200, {"success": True, "accepted": len(messages)})
    source = SOURCES[key]
    for msg, (_key, fragment) in zip(messages, deliverer.events, strict=True):
        event = Touchpoint.model_validate_json(fragment)
        assert str(event.event_id) == msg["messageId"]
        assert event.source == source.name and event.channel.value == source.channel
        assert event.occurred_at == datetime.fromisoformat(msg["timestamp"])
        assert event.received_at == NOW
        assert event.event_type == (
            msg["event"]
            if msg["type"] == "track"
            else {"page": "page_view", "screen": "screen_view"}.get(msg["type"], msg["type"])
        )
        anonymous = msg["previousId"] if msg["type"] == "alias" else msg["anonymousId"]
        assert (event.identity.customer_id, event.identity.anonymous_id) == (
            msg["userId"],
            anonymous,
        )
        assert event.properties == expected_properties(msg)
        if msg["type"] in ("page", "screen"):
            assert event.touchpoint == msg["name"]


@FAST
@given(st.lists(valid_calls, min_size=1, max_size=5), st.lists(safe_text, min_size=5, max_size=5))
def test_a_retried_batch_gets_the_same_event_ids(
    messages: list[dict[str, Any]], message_ids: list[str]
) -> None:
    """SDKs retry with the same messageIds, UUIDs or not: the ids must repeat to dedupe."""
    for msg, message_id in zip(messages, message_ids, strict=False):
        msg["messageId"] = message_id
    body = orjson.dumps({"batch": messages})
    ids = []
    for _attempt in range(2):
        deliverer = FakeDeliverer(started=True)
        call(app(deliverer), "POST", "/v1/batch", body, {"Authorization": basic(WEB_KEY)})
        ids.append([Touchpoint.model_validate_json(f).event_id for _k, f in deliverer.events])
    assert ids[0] == ids[1] and len(ids[0]) == len(messages)
    assert ids[0] == [event_id_for(WEB_KEY, msg) for msg in messages]
