"""Attribution of a call (producers/collector/attribution.py): URLs reduced to an allow-list,
UTM from the campaign context or the URL, user-agent family and device class, masked IPs."""

from __future__ import annotations

from typing import Any

import pytest

from producers.collector.attribution import (
    AttributionRules,
    attribution_of,
    masked_ip,
    reduced_url,
    user_agent,
)
from tests.unit.producers.collector.builders import HASHER, SCRUBBER

UTM_ONLY = AttributionRules().kept_parameters
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
IPAD = IPHONE.replace("iPhone; CPU iPhone OS", "iPad; CPU OS")
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def of(context: dict[str, Any], rules: AttributionRules | None = None, **msg: Any) -> Any:
    return attribution_of(
        {"type": "track", **msg},
        context,
        rules or AttributionRules(),
        SCRUBBER,
        peer="198.51.100.23",
        ip_hash=HASHER.keyed,
    )


@pytest.mark.parametrize(
    ("url", "kept", "expected"),
    [
        (
            "https://shop.example/sale?utm_source=news&gclid=abc&utm_campaign=spring#top",
            UTM_ONLY,
            "https://shop.example/sale?utm_source=news&utm_campaign=spring",
        ),
        (
            "https://shop.example/sale?gclid=abc&token=s3cret",
            UTM_ONLY | {"gclid"},
            "https://shop.example/sale?gclid=abc",
        ),
        ("https://jane:pw@shop.example:8443/a?x=1", UTM_ONLY, "https://shop.example:8443/a"),
        ("HTTPS://Shop.Example/A", UTM_ONLY, "https://shop.example/A"),
        ("/relative/path", UTM_ONLY, None),
        ("javascript:alert(1)", UTM_ONLY, None),
        ("https://[::1/", UTM_ONLY, None),
        ("https://shop.example/" + "p" * 2100, UTM_ONLY, None),
        (42, UTM_ONLY, None),
    ],
)
def test_urls_keep_only_allow_listed_query_parameters(
    url: Any, kept: frozenset[str], expected: str | None
) -> None:
    assert reduced_url(url, kept) == expected


def test_a_page_call_gives_url_referrer_and_utm_from_the_url() -> None:
    page = {
        "url": "https://shop.example/sale?utm_source=news&utm_medium=email&utm_campaign=spring"
        "&utm_term=shoes&utm_content=hero&email=jane%40example.com",
        "referrer": "https://mail.example/inbox?id=77",
    }
    block = of({"page": page})
    assert block == {
        "page_url": "https://shop.example/sale?utm_source=news&utm_medium=email"
        "&utm_campaign=spring&utm_term=shoes&utm_content=hero",
        "referrer": "https://mail.example/inbox",
        "utm_source": "news",
        "utm_medium": "email",
        "utm_campaign": "spring",
        "utm_term": "shoes",
        "utm_content": "hero",
    }


def test_the_campaign_context_wins_over_the_url_and_names_the_campaign() -> None:
    context = {
        "campaign": {"name": "summer", "source": "ads"},
        "page": {"url": "https://shop.example/?utm_campaign=spring&utm_medium=cpc"},
    }
    block = of(context)
    assert (block["utm_campaign"], block["utm_source"], block["utm_medium"]) == (
        "summer",
        "ads",
        "cpc",
    )


def test_page_calls_read_their_properties_and_apps_their_referrer_context() -> None:
    props = {"url": "https://shop.example/p", "referrer": "https://a.example/"}
    assert of({}, properties=props, type="page") == {
        "page_url": "https://shop.example/p",
        "referrer": "https://a.example/",
    }
    assert of({}, properties=props) is None  # a track's properties are its own business
    assert of({"referrer": {"type": "link", "url": "https://deep.example/x?utm_source=qr"}}) == {
        "referrer": "https://deep.example/x?utm_source=qr"
    }


def test_contact_details_in_kept_parameters_are_hashed() -> None:
    rules = AttributionRules(frozenset({"ref"}))
    block = of({"page": {"url": "https://shop.example/?ref=jane@example.com"}}, rules)
    assert "jane@example.com" not in block["page_url"]
    assert HASHER.email("jane@example.com") in block["page_url"]


@pytest.mark.parametrize(
    ("agent", "family", "device_class"),
    [
        (CHROME, "Chrome", "desktop"),
        (IPHONE, "Mobile Safari", "mobile"),
        (IPAD, "Mobile Safari", "tablet"),
        (ANDROID_TABLET, "Chrome", "tablet"),
        (ANDROID_PHONE, "Chrome Mobile", "mobile"),
        (GOOGLEBOT, "Googlebot", "bot"),
    ],
)
def test_user_agents_give_a_family_and_a_device_class(
    agent: str, family: str, device_class: str
) -> None:
    parsed = user_agent(agent)
    assert parsed is not None and (parsed.family, parsed.device_class) == (family, device_class)
    block = of({"userAgent": agent})
    assert (block["user_agent_family"], block["device_class"]) == (family, device_class)


@pytest.mark.parametrize("agent", ["", "   ", "x" * 2000, 17, "analytics-node-next/latest"])
def test_unusable_or_unknown_user_agents_give_nothing(agent: Any) -> None:
    assert user_agent(agent) is None


def test_the_ip_is_dropped_by_default_and_never_kept_raw() -> None:
    assert of({"ip": "203.0.113.77"}) is None
    truncate, hashed = AttributionRules(ip="truncate"), AttributionRules(ip="hash")
    assert of({"ip": "203.0.113.77"}, truncate) == {"ip": "203.0.113.0"}
    assert of({}, truncate) == {"ip": "198.51.100.0"}  # the connection's peer
    assert of({"ip": "2001:db8:85a3:8d3:1319:8a2e:370:7348"}, truncate) == {"ip": "2001:db8:85a3::"}
    assert of({"ip": "203.0.113.77"}, hashed) == {"ip": HASHER.keyed("203.0.113.77")}
    assert masked_ip("not an ip", "truncate", None) is None
