"""Where a call's customer came from and on what: the touchpoint's `attribution` block
(contract v3), from the SDK's context. Pure, but for the user-agent rules it loads once.

- `page_url`, `referrer`: `context.page.url` / `.referrer` (analytics.js, RudderStack's JS
  SDK), a page call's `properties.url` / `.referrer`, or a mobile SDK's `context.referrer.url`.
  Query strings are reduced to an allow-list (the five UTM parameters plus what the source
  declares): click ids, session tokens and e-mail addresses in links are the usual leaks of a
  URL. Fragments and credentials are dropped; what is left is scrubbed like any text.
- `utm_*`: `context.campaign` (`name` is the campaign, as Segment spells it), else the
  page URL's own `utm_*` parameters.
- `user_agent_family`, `device_class`: `context.userAgent` read with ua-parser (the
  Browserscope / uap-core rules, kept up to date in `ua-parser-builtins`); the class is
  decided here from what it finds (`device_class`).
- `ip`: `context.ip`, else the connection's peer; dropped unless the source says `truncate`
  (IPv4 to /24, IPv6 to /48) or `hash` (keyed, as contact details are).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ua_parser import parse as parse_user_agent

from producers.collector.scrub import Scrubber
from schemas.touchpoint import Attribution, DeviceClass

UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# Segment's `context.campaign` names: `name` is the campaign.
_CAMPAIGN_KEYS = {
    "source": "utm_source",
    "medium": "utm_medium",
    "name": "utm_campaign",
    "term": "utm_term",
    "content": "utm_content",
}
MAX_URL = 2048
MAX_TEXT = 256
MAX_FAMILY = 64
MAX_USER_AGENT = 1024  # longer ones are not browsers; ua-parser's regexes run on every byte
IpMode = Literal["drop", "truncate", "hash"]

_MOBILE_OS = frozenset(
    {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS", "Symbian OS"}
)
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD", "Debian"}
)
_TABLET_HINTS = ("ipad", "tablet", "kindle", "playbook", "nexus 7", "nexus 9", "nexus 10")


@dataclass(frozen=True, slots=True)
class AttributionRules:
    """What a source declares: query parameters kept beside UTM, and what becomes of the IP."""

    query_allowlist: frozenset[str] = frozenset()
    ip: IpMode = "drop"

    @property
    def kept_parameters(self) -> frozenset[str]:
        return self.query_allowlist | frozenset(UTM)


@dataclass(frozen=True, slots=True)
class Agent:
    """What a user-agent string says: the browser or app family and the kind of device."""

    family: str | None
    device_class: DeviceClass | None


def attribution_of(
    msg: dict[str, Any],
    context: dict[str, Any],
    rules: AttributionRules,
    scrubber: Scrubber,
    *,
    peer: str | None = None,
    ip_hash: Callable[[str], str] | None = None,
) -> dict[str, str] | None:
    """The `attribution` block of one call, its fields in the model's order and only those
    found; None when the call says nothing about where it came from."""
    props = _dict(msg.get("properties")) if msg.get("type") == "page" else {}
    page = _dict(context.get("page"))
    kept = rules.kept_parameters
    page_url = reduced_url(page.get("url") or props.get("url"), kept)
    referrer = reduced_url(
        page.get("referrer") or props.get("referrer") or _dict(context.get("referrer")).get("url"),
        kept,
    )
    found: dict[str, str | None] = {
        "page_url": _scrubbed_url(page_url, scrubber),
        "referrer": _scrubbed_url(referrer, scrubber),
        **campaign(_dict(context.get("campaign")), page_url, scrubber),
    }
    agent = user_agent(context.get("userAgent"))
    if agent is not None:
        found["user_agent_family"] = agent.family
        found["device_class"] = agent.device_class
    if rules.ip != "drop":
        found["ip"] = masked_ip(context.get("ip") or peer, rules.ip, ip_hash)
    block = {name: value for name, value in found.items() if value is not None}
    if not block:
        return None
    return {name: block[name] for name in Attribution.model_fields if name in block}


def reduced_url(value: Any, kept: frozenset[str]) -> str | None:
    """An absolute http(s) URL without credentials, fragment or query parameters outside
    `kept`; None for anything else or anything longer than a URL field holds."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    netloc = host if port is None else f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in kept]
    url = urlunsplit((parts.scheme.lower(), netloc, parts.path, urlencode(query), ""))
    return url if len(url) <= MAX_URL else None


def campaign(
    given: dict[str, Any], page_url: str | None, scrubber: Scrubber
) -> dict[str, str | None]:
    """UTM fields from the SDK's campaign context, else from the (reduced) page URL."""
    values: dict[str, str | None] = dict.fromkeys(UTM)
    for key, name in _CAMPAIGN_KEYS.items():
        values[name] = _text(given.get(key) or given.get(name), scrubber)
    if page_url and "utm_" in page_url:
        query = dict(parse_qsl(urlsplit(page_url).query))
        for name in UTM:
            if values[name] is None:
                values[name] = _text(query.get(name), scrubber)
    return values


def user_agent(value: Any) -> Agent | None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_USER_AGENT:
        return None
    return _agent(value.strip())


@functools.lru_cache(maxsize=4096)  # a site sees few distinct user agents; parsing is ~0.5 ms
def _agent(text: str) -> Agent | None:
    parsed = parse_user_agent(text)
    family = parsed.user_agent.family if parsed.user_agent else None
    if family == "Other":
        family = None
    device = parsed.device.family if parsed.device else None
    brand = parsed.device.brand if parsed.device else None
    os_family = parsed.os.family if parsed.os else None
    kind = device_class(text, device, brand, os_family)
    if family is None and kind is None:
        return None
    return Agent(family[:MAX_FAMILY] if family else None, kind)


def device_class(
    text: str, device: str | None, brand: str | None, os_family: str | None
) -> DeviceClass | None:
    """The kind of device behind a user agent, from what ua-parser found in it: crawlers
    are `bot`; tablets are named (iPad, Kindle, ua-parser's generic Android tablet) or run
    Android without the `Mobile` token (Google's rule for tablet browsers); phones run a
    mobile OS; desktops a desktop OS. None when nothing says."""
    named = f"{device or ''} {brand or ''}".lower()
    tablet = "tablet" in named or any(hint in named for hint in _TABLET_HINTS)
    decided: list[tuple[bool, DeviceClass]] = [
        (device == "Spider", "bot"),
        (tablet or (os_family == "Android" and "Mobile" not in text), "tablet"),
        (os_family in _MOBILE_OS or "Mobile" in text, "mobile"),
        (os_family in _DESKTOP_OS, "desktop"),
        (bool(device) and device != "Other", "other"),
    ]
    return next((kind for holds, kind in decided if holds), None)


def masked_ip(value: Any, mode: IpMode, keyed: Callable[[str], str] | None) -> str | None:
    """An IP address truncated to its network (/24, /48) or keyed-hashed; never as given."""
    if not isinstance(value, str):
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if mode == "hash":
        return keyed(str(address)) if keyed is not None else None
    if mode == "truncate":
        prefix = 24 if address.version == 4 else 48
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
    return None


def _scrubbed_url(url: str | None, scrubber: Scrubber) -> str | None:
    """Hashing a contact detail lengthens a URL: one that no longer fits is left out."""
    if url is None:
        return None
    scrubbed = scrubber.text(url)
    return scrubbed if len(scrubbed) <= MAX_URL else None


def _text(value: Any, scrubber: Scrubber) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    return scrubber.text(text)[:MAX_TEXT] if text else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
