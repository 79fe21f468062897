"""Where a call happened (producers/collector/places.py): page paths on the web, screens in
apps, a source's own fields for any channel."""

from __future__ import annotations

from typing import Any

import pytest

from producers.collector.places import TouchpointFields
from schemas.touchpoint import Channel

DEFAULTS = TouchpointFields()


@pytest.mark.parametrize(
    ("msg", "channel", "expected"),
    [
        ({"type": "page", "properties": {"path": "/home"}, "name": "Home"}, Channel.WEB, "/home"),
        ({"type": "page", "name": "Home"}, Channel.WEB, "Home"),
        ({"type": "track", "context": {"page": {"path": "/cart?step=2#x"}}}, Channel.WEB, "/cart"),
        (
            {"type": "track", "context": {"page": {"url": "https://s.example/p/1?utm_source=a"}}},
            Channel.WEB,
            "/p/1",
        ),
        ({"type": "track", "properties": {"url": "https://s.example"}}, Channel.WEB, "/"),
        ({"type": "screen", "name": "Basket"}, Channel.APP, "Basket"),
        ({"type": "track", "context": {"screen": {"name": "Checkout"}}}, Channel.APP, "Checkout"),
        ({"type": "track", "properties": {"screen": "Search"}}, Channel.APP, "Search"),
        ({"type": "identify", "context": {"screen": {"name": "Login"}}}, Channel.APP, "Login"),
        ({"type": "track", "context": {"page": {"path": "/in-app"}}}, Channel.APP, "/in-app"),
        ({"type": "track", "properties": {"screen": "   "}}, Channel.APP, None),
        ({"type": "track", "properties": {"path": 7}}, Channel.WEB, None),
        ({"type": "track", "context": "not a dict"}, Channel.WEB, None),
    ],
)
def test_default_touchpoints(msg: dict[str, Any], channel: Channel, expected: str | None) -> None:
    assert DEFAULTS.of(msg, channel) == expected


def test_a_source_declares_its_own_fields_per_channel() -> None:
    fields = TouchpointFields({"app": ["properties.view", "name"], "store": ["properties.till"]})
    msg = {"type": "screen", "name": "Basket", "properties": {"view": "basket-v2", "till": "04"}}
    assert fields.of(msg, Channel.APP) == "basket-v2"
    assert fields.of(msg, Channel.STORE) == "04"
    assert fields.of({"type": "page", "properties": {"path": "/a"}}, Channel.WEB) == "/a"
