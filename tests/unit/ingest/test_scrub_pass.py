"""The ingest stage hashes contact details in the texts of whatever reaches `raw` (another
producer's events, `journeys publish`'s), in what it forwards and in what it dead-letters."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from producers.files import _publish_line
from producers.pii import PiiHasher
from schemas import envelope
from schemas.settings import PiiSettings
from schemas.touchpoint import Touchpoint
from tests.unit.builders import touchpoint
from tests.unit.ingest.test_idle_advance import NOW, Clock, stage

DETAILS = ["555 123 4567", "0044 20 7946 0958", "07700 900123", "1-800-555-0199"]
EMAIL = "jané@exämple.com"
NOTE = f"call {DETAILS[0]} or {DETAILS[1]}, mobile {DETAILS[2]}, free {DETAILS[3]}, {EMAIL}"


def _no_detail(blob: bytes) -> None:
    text = blob.decode()
    for detail in [*DETAILS, EMAIL]:
        assert detail not in text and orjson.dumps(detail).decode()[1:-1] not in text


@pytest.mark.parametrize(
    "event",
    [
        touchpoint(1, properties={"note": NOTE, EMAIL: 1}, touchpoint=f"/help/{DETAILS[0]}"),
        touchpoint(2, occurred_at=DETAILS[0], properties={"note": NOTE}),  # dead-lettered
        touchpoint(3, identity={"customer_id": EMAIL}, web={"path": "/x"}, schema_version=2),
    ],
)
def test_what_the_stage_writes_holds_no_contact_detail(event: dict[str, Any]) -> None:
    s, sender, _topics = stage(Clock())
    s.handle(envelope.encode([orjson.dumps(event)], None), 0, 1, NOW)
    assert sender.records
    for _topic, value, _partition in sender.records:
        _no_detail(value or b"")


def test_a_payload_that_is_not_an_envelope_is_dead_lettered_scrubbed() -> None:
    s, sender, topics = stage(Clock())
    s.handle(f"not json: {NOTE}".encode(), 0, 1, NOW)
    [(topic, value, _)] = sender.records
    assert topic == topics.dlq_ingest
    _no_detail(value or b"")


class _Publisher:
    def __init__(self) -> None:
        self.events: list[Touchpoint] = []

    def publish(self, event: Touchpoint) -> None:
        self.events.append(event)


def test_journeys_publish_hashes_free_text_before_sending() -> None:
    pub = _Publisher()
    line = orjson.dumps(touchpoint(1, properties={"note": NOTE}))
    duck: Any = pub
    assert _publish_line(duck, PiiHasher(PiiSettings()), line) is None
    [event] = pub.events
    _no_detail(event.model_dump_json().encode())
    assert str(event.properties["note"]).startswith("call dev:")
