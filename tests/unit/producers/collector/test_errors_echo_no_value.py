"""The collector's 400 names the field and what is wrong, never the rejected value: an
e-mail, a phone number or a secret in an invalid field stays out of the answer, and out of
the dead letter's errors when other calls of the batch are fine."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from producers.collector.intake import Request
from schemas.deadletter import DeadLetter
from tests.unit.producers.collector.builders import NOW, WEB_KEY, basic, intake, track

VALUES = ["jane.doe@example.com", "+44 20 7946 0958", "sk_live_4eC39HqLyjWDarjtT1zdp7dcXyZ"]

PLACES: dict[str, tuple[dict[str, Any], str]] = {
    "timestamp": ({"timestamp": "{v}"}, "timestamp"),
    "original timestamp": ({"timestamp": None, "originalTimestamp": "{v}"}, "originalTimestamp"),
    "event type": ({"event": ["{v}"]}, "event"),
    "call type": ({"type": "{v}"}, "type"),
    "identity field": ({"userId": ["{v}"], "anonymousId": None}, "userId"),
}


def _fill(template: dict[str, Any], value: str) -> dict[str, Any]:
    text = orjson.dumps(template).decode().replace("{v}", value.replace('"', ""))
    return dict(orjson.loads(text))


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("place", list(PLACES))
def test_no_rejected_value_in_a_400_or_a_dead_letter(place: str, value: str) -> None:
    template, field = PLACES[place]
    bad = track(1, **_fill(template, value))
    handle = intake().handle

    alone = handle(
        Request("batch", "/v1/batch", orjson.dumps({"batch": [bad]}), basic(WEB_KEY)), NOW, 0.0
    )
    assert alone.status == 400
    body = orjson.dumps(alone.body).decode()
    assert value not in body and value[:6] not in body, body
    assert alone.body["field"] == f"batch[0].{field}"

    mixed = handle(
        Request("batch", "/v1/batch", orjson.dumps({"batch": [track(2), bad]}), basic(WEB_KEY)),
        NOW,
        0.0,
    )
    assert mixed.status == 200
    assert value not in orjson.dumps(mixed.body).decode()
    (letter,) = [DeadLetter.model_validate_json(d) for d in mixed.dead_letters]
    said = orjson.dumps([e.model_dump() for e in letter.errors]).decode() + letter.detail
    assert value not in said and value[:6] not in said, said
    assert letter.errors[0].field == f"batch[1].{field}"
