"""Structured logs: the fields given with `extra=` reach both formats."""

from __future__ import annotations

import json
import logging

from deploy.logs import JsonFormatter, TextFormatter


def record(**fields: object) -> logging.LogRecord:
    rec = logging.LogRecord(
        "journeys.x", logging.WARNING, __file__, 1, "counts dropped", None, None
    )
    rec.__dict__.update(fields)
    return rec


def test_json_lines_carry_the_fields() -> None:
    doc = json.loads(JsonFormatter().format(record(dropped=3, stage="friction")))
    assert doc["msg"] == "counts dropped" and doc["level"] == "warning"
    assert doc["dropped"] == 3 and doc["stage"] == "friction"


def test_text_lines_carry_the_fields_after_the_message() -> None:
    line = TextFormatter().format(record(dropped=3, lateness="1:00:00"))
    assert line.endswith('journeys.x: counts dropped dropped=3 lateness="1:00:00"')
    assert TextFormatter().format(record()).endswith("journeys.x: counts dropped")
