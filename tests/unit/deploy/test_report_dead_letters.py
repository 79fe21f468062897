"""`journeys report` counts every stage's dead letters by stage and reason, and the rows
ClickHouse refused by table (read from Kafka; a fake reader stands in for the topics here,
the integration and chaos tests read the real ones)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from deploy import report
from schemas.settings import Settings
from schemas.topics import Topics


class Message:
    def __init__(self, doc: dict[str, Any]) -> None:
        self._value = orjson.dumps(doc)

    def value(self) -> bytes:
        return self._value


def test_every_stage_and_the_sink_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    topics = Topics.from_settings(settings.topics)
    held: dict[str, list[dict[str, Any]]] = {
        topics.dlq_ingest: [{"reason": "invalid_field"}, {"reason": "invalid_field"}],
        topics.dlq_identity: [{"reason": "unsupported_envelope"}],
        topics.dlq_journeys: [{"reason": "invalid_field"}],
        topics.dlq_friction: [],
        topics.dlq_sink: [{"table": "touchpoints", "row_count": 40}, {"table": "journeys"}],
    }

    def read(_kafka: Any, topic: str) -> Iterator[Message]:
        return iter([Message(d) for d in held[topic]])

    monkeypatch.setattr(report, "read_to_end", read)
    counts = report.every_dead_letter(settings.kafka, topics)
    assert counts == {
        "ingest: invalid_field": 2,
        "identity: unsupported_envelope": 1,
        "journeys: invalid_field": 1,
        "sink: rows refused by touchpoints": 40,
        "sink: rows refused by journeys": 1,  # a message whose rows could not be told apart
    }
    text = report.render(report.Summary(dead_letters=counts))
    assert "Dead-lettered: 45" in text and "sink: rows refused by touchpoints" in text
