"""Write keys as the SDKs send them, and the sources they belong to."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from producers.collector.auth import Sources, basic_user, query_write_key, write_key
from producers.collector.protocol import HttpError
from schemas.settings import CollectorSource, Settings
from schemas.touchpoint import Channel
from tests.unit.producers.collector.builders import SOURCES, basic


def test_basic_auth_with_the_key_as_user_and_an_empty_password() -> None:
    assert basic_user(basic("wk_web")) == "wk_web"
    assert basic_user("basic " + base64.b64encode(b"wk_web").decode()) == "wk_web"


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("Bearer abc", "unsupported Authorization scheme"),
        ("Basic !!!", "not valid Basic"),
        ("Basic " + base64.b64encode(b"\xff\xfe:").decode(), "not valid Basic"),
    ],
)
def test_bad_authorization_headers_are_401_with_a_reason(header: str, says: str) -> None:
    with pytest.raises(HttpError) as caught:
        basic_user(header)
    assert caught.value.status == 401 and says in caught.value.message


def test_the_header_wins_then_the_query_then_the_body() -> None:
    assert write_key(basic("h"), "writeKey=q", {"writeKey": "b"}) == "h"
    assert write_key(None, "writeKey=q", {"writeKey": "b"}) == "q"
    assert write_key(None, "", {"writeKey": "b"}) == "b"
    assert query_write_key("a=1&writeKey=wk") == "wk"


@pytest.mark.parametrize("body", [{}, {"writeKey": ""}, {"writeKey": 12}])
def test_a_missing_key_is_401_saying_how_to_send_one(body: dict[str, object]) -> None:
    with pytest.raises(HttpError) as caught:
        write_key(None, "", body)
    assert caught.value.status == 401
    assert "missing write key" in caught.value.message and "Basic" in caught.value.message


def test_sources_look_up_keys_and_refuse_unknown_ones() -> None:
    sources = Sources(SOURCES)
    found = sources.lookup("wk_call")
    assert (found.name, found.channel) == ("contact-center", Channel.CALL_CENTER)
    with pytest.raises(HttpError) as caught:
        sources.lookup("wk_nope")
    assert (caught.value.status, caught.value.message) == (401, "unknown write key")


def test_sources_come_from_settings_with_the_keys_kept_secret() -> None:
    settings = Settings(collector={"sources": {"wk_1": {"name": "web-shop", "channel": "web"}}})
    assert "wk_1" not in repr(settings.collector)
    sources = Sources.from_settings(settings.collector.sources)
    assert sources.lookup("wk_1").name == "web-shop"
    assert settings.collector.sources[SecretStr("wk_1")] == CollectorSource(
        name="web-shop", channel="web"
    )
