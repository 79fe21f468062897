"""Input built to break the collector gets a 400 naming the field, never a 500: calls nested
too deeply (with or without a messageId to hash), integers beyond 64 bits, control characters
in event names, and gzip bodies of several members or with something after them."""

from __future__ import annotations

import gzip
import json
from typing import Any

import orjson
import pytest

from producers.collector.intake import Outcome, Request
from tests.unit.producers.collector.builders import APP_KEY, NOW, WEB_KEY, basic, intake, track


def handle(kind: str, body: bytes, encoding: str | None = None) -> Outcome:
    return intake().handle(Request(kind, f"/v1/{kind}", body, basic(WEB_KEY), encoding), NOW, 0.0)


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"x": 1}
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("message_id", [None, "m-1"])
@pytest.mark.parametrize("levels", [300, 1000])
def test_a_call_nested_too_deeply_is_400_naming_its_field(
    message_id: str | None, levels: int
) -> None:
    # Written as text: Python's own encoder stops far short of 1,000 levels.
    deep = '{"a": ' * levels + "1" + "}" * levels
    head = f'"messageId": "{message_id}", ' if message_id else ""
    body = f'{{{head}"event": "Viewed", "userId": "u-1", "properties": {deep}}}'
    outcome = handle("track", body.encode())
    assert outcome.status == 400, outcome.body
    assert outcome.body["field"] == "properties"
    assert "nested too deeply" in outcome.body["message"]


def test_a_deep_call_in_a_batch_is_dead_lettered_and_the_others_kept() -> None:
    deep = {"type": "track", "event": "E", "userId": "u", "traits": nested(300)}
    outcome = handle("batch", json.dumps({"batch": [deep, track(2)]}).encode())
    assert outcome.status == 200 and len(outcome.events) == 1
    assert outcome.body["rejected"][0]["field"] == "batch[0].traits"
    assert len(outcome.dead_letters) == 1


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"n": 2**64}, "properties.n"),
        ({"n": -(2**63) - 1}, "properties.n"),
        ({"items": [1, {"id": 10**30}]}, "properties.items[1].id"),
    ],
)
def test_integers_beyond_64_bits_are_400_naming_the_field(
    properties: dict[str, Any], field: str
) -> None:
    outcome = handle("track", json.dumps({**_call(), "properties": properties}).encode())
    assert outcome.status == 400 and outcome.body["field"] == field, outcome.body
    assert "beyond 64 bits" in outcome.body["message"]


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63), "123456789012345678901234"])
def test_values_within_64_bits_and_long_digit_strings_are_kept_exactly(value: Any) -> None:
    outcome = handle("track", json.dumps({**_call(), "properties": {"n": value}}).encode())
    assert outcome.status == 200, outcome.body
    assert orjson.loads(outcome.events[0][1])["properties"]["n"] == value


def test_a_batch_call_with_a_huge_integer_is_dead_lettered_with_it_exact() -> None:
    big = {"type": "track", "event": "E", "userId": "u", "properties": {"n": 10**25}}
    outcome = handle("batch", json.dumps({"batch": [big, track(2)]}).encode())
    assert outcome.status == 200 and outcome.body["rejected"][0]["field"] == "batch[0].properties.n"
    raw = orjson.loads(outcome.dead_letters[0])["raw"]
    assert json.loads(raw)["properties"]["n"] == 10**25


@pytest.mark.parametrize("bad", ["\x00", "\n", "\r", "\t", "\x7f", "\x85", "\u202e", "\u2066"])
def test_control_characters_in_event_names_are_400_naming_event(bad: str) -> None:
    outcome = handle("track", json.dumps({**_call(), "event": f"Order{bad}Completed"}).encode())
    assert outcome.status == 400 and outcome.body["field"] == "event", outcome.body


def test_every_gzip_member_is_read() -> None:
    body = gzip.compress(b'{"event": "Viewed", ') + gzip.compress(b'"userId": "u-1"}')
    outcome = handle("track", body, "gzip")
    assert outcome.status == 200, outcome.body
    assert orjson.loads(outcome.events[0][1])["identity"]["customer_id"] == "u-1"


@pytest.mark.parametrize("tail", [b"junk", b"\x1f\x8b\x08", gzip.compress(b"x")[:-4]])
def test_anything_after_the_last_gzip_member_is_400(tail: bytes) -> None:
    outcome = handle("track", gzip.compress(orjson.dumps(_call())) + tail, "gzip")
    assert outcome.status == 400 and outcome.body["code"] == "malformed_gzip"


def test_gzip_members_together_are_held_to_the_size_limit() -> None:
    member = gzip.compress(b" " * 20_000)
    outcome = handle("track", member + member + gzip.compress(orjson.dumps(_call())), "gzip")
    assert outcome.status == 413


def _call() -> dict[str, Any]:
    return {"event": "Viewed", "userId": "u-1", "messageId": "m-1"}


@pytest.mark.parametrize(
    ("key", "kind", "call", "field"),
    [
        (APP_KEY, "screen", {"name": "Bas{c}ket"}, "name"),
        (
            APP_KEY,
            "track",
            {"event": "Viewed", "properties": {"screen": "Sea{c}rch"}},
            "properties.screen",
        ),
        (
            APP_KEY,
            "track",
            {"event": "Viewed", "context": {"screen": {"name": "Ca{c}rt"}}},
            "context.screen.name",
        ),
        (WEB_KEY, "page", {"name": "Ho{c}me"}, "name"),
        (
            WEB_KEY,
            "track",
            {"event": "Viewed", "context": {"page": {"path": "/a{c}b"}}},
            "context.page.path",
        ),
    ],
)
@pytest.mark.parametrize("bad", ["\x00", "\n", "\u202e"])
def test_control_characters_in_a_touchpoint_are_400_naming_its_field(
    key: str, kind: str, call: dict[str, Any], field: str, bad: str
) -> None:
    """A screen's or page's name is a name too: it is the touchpoint charts and routes show."""
    text = json.dumps({**call, "userId": "u-1"}).replace("{c}", json.dumps(bad)[1:-1])
    request = Request(kind, f"/v1/{kind}", text.encode(), basic(key))
    outcome = intake().handle(request, NOW, 0.0)
    assert outcome.status == 400 and outcome.body["field"] == field, outcome.body
    clean = text.replace(json.dumps(bad)[1:-1], "")
    kept = intake().handle(Request(kind, f"/v1/{kind}", clean.encode(), basic(key)), NOW, 0.0)
    assert kept.status == 200 and orjson.loads(kept.events[0][1])["touchpoint"], kept.body


@pytest.mark.parametrize("bad", ["\x00", "\n", "\u202e", "\ufeff"])
def test_property_keys_with_control_characters_are_dropped_with_a_note(bad: str) -> None:
    """A property key is a name too; the event keeps its other properties."""
    properties = {f"co{bad}lor": "red", "size": "M", "product": {f"s{bad}ku": "A1", "brand": "x"}}
    outcome = handle("track", json.dumps({**_call(), "properties": properties}).encode())
    assert outcome.status == 200, outcome.body
    kept = orjson.loads(outcome.events[0][1])["properties"]
    assert kept == {"size": "M", "product.brand": "x"}
    notes = [w["message"] for w in outcome.body["warnings"]]
    assert len(notes) == 2 and all("control" in n and bad not in n for n in notes), notes
