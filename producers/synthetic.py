"""Synthetic multi-channel touchpoints for the walking skeleton's demo, tests and benchmarks,
deterministic for a seed, with a chosen share of invalid payloads and repeated event ids.

Each item says what it is (`valid`, `duplicate` or an invalid kind) so a test can compare
what reached ClickHouse and the dead-letter topic with what was sent. The realistic journey
simulator (`journeys simulate`) is a separate, richer module.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import orjson

Kind = Literal[
    "valid", "duplicate", "malformed_json", "invalid_field", "no_identity", "future", "not_object"
]
INVALID_KINDS: tuple[Kind, ...] = (
    "malformed_json",
    "invalid_field",
    "no_identity",
    "future",
    "not_object",
)

_CHANNEL_EVENTS = {
    "web": ("web-shop", ("page_view", "search", "add_to_cart", "checkout_step", "error")),
    "app": ("ios-app", ("screen_view", "push_open", "crash", "add_to_cart")),
    "call_center": ("genesys", ("contact_queued", "contact_answered", "contact_ended")),
    "store": ("pos", ("store_visit", "purchase", "return", "loyalty_scan")),
}
_TOUCHPOINTS = ("/", "/search", "/product", "/cart", "/checkout", "queue:billing", "store:042")


@dataclass(frozen=True, slots=True)
class Item:
    """One payload to publish: `event` for a JSON object, `raw` for bytes sent as they are."""

    kind: Kind
    key: str
    event: dict[str, object] | None = None
    raw: bytes | None = None

    @property
    def event_id(self) -> str | None:
        value = self.event.get("event_id") if self.event else None
        return value if isinstance(value, str) else None


def generate(
    count: int,
    *,
    seed: int = 7,
    invalid_ratio: float = 0.0,
    duplicate_ratio: float = 0.0,
    persons: int = 1000,
    start: datetime,
) -> Iterator[Item]:
    """`count` payloads; about `invalid_ratio` invalid and `duplicate_ratio` repeated ids."""
    rng = random.Random(seed)
    recent: list[Item] = []
    for i in range(count):
        roll = rng.random()
        if roll < invalid_ratio:
            yield _invalid(rng, rng.choice(INVALID_KINDS), start)
        elif roll < invalid_ratio + duplicate_ratio and recent:
            original = rng.choice(recent)
            yield Item("duplicate", original.key, original.event)
        else:
            item = _valid(rng, i, persons, start)
            recent.append(item)
            if len(recent) > 500:
                recent.pop(0)
            yield item


def _valid(rng: random.Random, i: int, persons: int, start: datetime) -> Item:
    person = rng.randrange(persons)
    channel = rng.choice(tuple(_CHANNEL_EVENTS))
    source, types = _CHANNEL_EVENTS[channel]
    identity: dict[str, str] = {
        "web": {"anonymous_id": f"anon-{person}"},
        "app": {"device_id": f"dev-{person}"},
        "call_center": {"phone_hash": f"ph-{person:08x}"},
        "store": {"loyalty_id": f"L{person:07d}"},
    }[channel]
    if rng.random() < 0.3:
        identity["customer_id"] = f"cust-{person}"
    occurred = start + timedelta(seconds=i * 0.05 + rng.random())
    event: dict[str, object] = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "channel": channel,
        "source": source,
        "event_type": rng.choice(types),
        "occurred_at": occurred.isoformat(),
        "identity": identity,
        "session_id": f"s-{person}-{i // 200}" if channel in ("web", "app") else None,
        "touchpoint": rng.choice(_TOUCHPOINTS),
        "properties": {"n": rng.randrange(100), "ok": rng.random() < 0.9},
    }
    key = next(f"{k}:{v}" for k, v in _priority(identity))
    return Item("valid", key, event)


def _priority(identity: dict[str, str]) -> list[tuple[str, str]]:
    order = ("customer_id", "loyalty_id", "email_hash", "phone_hash", "device_id", "anonymous_id")
    return [(k, identity[k]) for k in order if k in identity]


def _invalid(rng: random.Random, kind: Kind, start: datetime) -> Item:
    base = _valid(rng, 0, 50, start)
    assert base.event is not None
    event = dict(base.event)
    if kind == "malformed_json":
        return Item(kind, base.key, raw=orjson.dumps(event)[:-7] + b"\x00garbage")
    if kind == "not_object":
        return Item(kind, base.key, raw=orjson.dumps([event["event_id"], 42]))
    if kind == "invalid_field":
        event["channel"] = rng.choice(("fax", "", 7))
    elif kind == "no_identity":
        event["identity"] = {}
    elif kind == "future":
        event["occurred_at"] = (start + timedelta(days=400)).isoformat()
    return Item(kind, base.key, event)
