"""A dead letter's errors name the field and what is wrong, never the rejected value: an
e-mail, a phone number or a secret in any invalid field stays out of `errors` and `detail`
(the raw payload keeps it, as the evidence)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from stream_processors.ingest.core.admission import Ingest
from tests.unit.builders import NOW, touchpoint
from tests.unit.ingest.test_admission import make_ingest

VALUES = ["jane.doe@example.com", "+44 20 7946 0958", "sk_live_4eC39HqLyjWDarjtT1zdp7dcXyZ"]


def _set(key: str, value: Callable[[str], Any]) -> Callable[[dict[str, Any], str], None]:
    return lambda raw, v: raw.__setitem__(key, value(v))


PLACES: dict[str, tuple[Callable[[dict[str, Any], str], None], str]] = {
    "timestamp": (_set("occurred_at", str), "occurred_at"),
    "received timestamp": (_set("received_at", str), "received_at"),
    "event id": (_set("event_id", str), "event_id"),
    "event type": (_set("event_type", lambda v: v * 20), "event_type"),
    "channel": (_set("channel", str), "channel"),
    "schema version": (_set("schema_version", str), "schema_version"),
    "identity field": (
        lambda raw, v: raw["identity"].__setitem__("customer_id", v * 20),
        "identity.customer_id",
    ),
    "identity unknown field": (
        lambda raw, v: raw["identity"].__setitem__(v, "x"),
        "identity",
    ),
    "session": (_set("session_id", lambda v: v * 20), "session_id"),
    "property value": (_set("properties", lambda v: {"note": v * 100}), "properties"),
    "property key": (_set("properties", lambda v: {v + "!" * 200: 1}), "properties"),
    "nested property": (_set("properties", lambda v: {"nested": {"a": v}}), "properties"),
    "unknown field": (lambda raw, v: raw.__setitem__(v, 1), "(event)"),
}


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("place", list(PLACES))
def test_no_rejected_value_in_a_dead_letters_errors(place: str, value: str) -> None:
    put, field = PLACES[place]
    raw = touchpoint(1)
    put(raw, value)
    ingest: Ingest = make_ingest()
    rejected = ingest.process([raw], NOW).rejected
    assert len(rejected) == 1
    rejection = rejected[0]
    said = orjson.dumps([e.model_dump() for e in rejection.errors]).decode() + rejection.detail
    assert value not in said and value[:6] not in said, said
    if field == "(event)":
        assert rejection.errors and rejection.errors[0].field == "<key>"
    else:
        assert any(e.field.startswith(field) for e in rejection.errors), said
    assert value.encode() in rejection.raw  # the evidence stays as it arrived
