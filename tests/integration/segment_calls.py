"""Simulated touchpoints as the Segment calls an application would have sent for them, for
tests that feed the simulator's traffic through the HTTP collector."""

from __future__ import annotations

from typing import Any

# One write key per channel, named like the simulator's sources.
KEYS = {"web": "wk_h_web", "app": "wk_h_app", "call_center": "wk_h_call", "store": "wk_h_store"}
SOURCES = {
    KEYS["web"]: {"name": "web-shop", "channel": "web"},
    KEYS["app"]: {"name": "mobile-app", "channel": "app"},
    KEYS["call_center"]: {"name": "contact-center", "channel": "call_center"},
    KEYS["store"]: {"name": "pos", "channel": "store"},
}
# Identifiers the simulator's touchpoints carry that a call sends as traits.
TRAITS = (("email", "email_hash"), ("phone", "phone_hash"), ("loyalty_id", "loyalty_id"))


def as_call(event: dict[str, Any]) -> dict[str, Any]:
    """A `track` call carrying the touchpoint: its id, time, identifiers (contact hashes as
    traits, which the collector hashes again, the same way every time), session, place
    (the page's path on web, the screen in apps, the page path for the other channels) and
    properties."""
    ids = event.get("identity") or {}
    context: dict[str, Any] = {}
    place = event.get("touchpoint")
    if place is not None:
        if event["channel"] == "app":
            context["screen"] = {"name": place}
        else:
            context["page"] = {"path": place}
    if ids.get("device_id"):
        context["device"] = {"id": ids["device_id"]}
    if event.get("session_id"):
        context["sessionId"] = event["session_id"]
    traits = {name: ids[field] for name, field in TRAITS if ids.get(field)}
    if traits:
        context["traits"] = traits
    call: dict[str, Any] = {
        "type": "track",
        "messageId": event["event_id"],
        "event": event["event_type"],
        "timestamp": event["occurred_at"],
        "properties": event.get("properties") or {},
        "context": context,
    }
    if ids.get("customer_id"):
        call["userId"] = ids["customer_id"]
    if ids.get("anonymous_id"):
        call["anonymousId"] = ids["anonymous_id"]
    return call
