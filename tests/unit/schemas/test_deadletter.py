"""schemas.deadletter: a rejected payload survives the dead-letter record byte for byte."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from schemas.deadletter import DeadLetter


def dead_letter(payload: bytes) -> DeadLetter:
    raw, encoding = DeadLetter.wrap_raw(payload)
    return DeadLetter(
        stage="ingest",
        reason="malformed_json",
        raw=raw,
        raw_encoding=encoding,
        source_topic="journeys.raw",
        source_partition=3,
        source_offset=42,
        rejected_at=datetime(2025, 3, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "payload",
    [b"", b'{"a": 1', "caf\u00e9 \u2603 \U0001f600".encode(), b"\x00nul inside"],
    ids=["empty", "json", "multibyte", "nul"],
)
def test_utf8_payloads_stay_readable(payload: bytes) -> None:
    assert DeadLetter.wrap_raw(payload) == (payload.decode("utf-8"), "utf-8")
    assert dead_letter(payload).raw_bytes() == payload


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe", b'{"a": "\xe9"}', b"\xed\xa0\x80", bytes(range(256)), b"ok\xc3"],
    ids=["bom", "latin1", "surrogate", "all-bytes", "truncated-utf8"],
)
def test_other_bytes_are_kept_as_base64(payload: bytes) -> None:
    raw, encoding = DeadLetter.wrap_raw(payload)
    assert encoding == "base64"
    assert base64.b64decode(raw, validate=True) == payload
    assert dead_letter(payload).raw_bytes() == payload


@pytest.mark.parametrize("payload", [b'{"a": "\xc3\xa9"}', b"\xff\x00\x01"])
def test_payload_survives_a_json_round_trip_of_the_record(payload: bytes) -> None:
    record = dead_letter(payload)
    again = DeadLetter.model_validate_json(record.model_dump_json())
    assert again == record
    assert again.raw_bytes() == payload
