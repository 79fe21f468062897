"""The collector's hot path (producers/collector/wire.py, `protocol.within_limit`): what it
vouches for is written exactly as the model would, and anything in doubt goes to the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import orjson
import pytest

from producers.collector import wire
from producers.collector.protocol import within_limit
from schemas.touchpoint import Channel, Touchpoint


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "channel": Channel.WEB,
        "source": "web-shop",
        "event_type": "Product Viewed",
        "schema_version": 1,
        "occurred_at": datetime(2025, 3, 1, 11, 59, 0, 120_000, tzinfo=UTC),
        "received_at": datetime(2025, 3, 1, 12, tzinfo=UTC),
        "identity": {
            "customer_id": "user-1",
            "anonymous_id": "anon-1",
            "device_id": None,
            "email_hash": None,
            "phone_hash": None,
            "loyalty_id": None,
        },
        "session_id": None,
        "touchpoint": "/p/1",
        "properties": {"sku": "sku-1", "price": 9.5, "n": 3, "ok": True, "none": None},
        "backfill": False,
    }
    doc.update(changes)
    return doc


def test_a_plain_document_is_written_as_the_model_writes_it() -> None:
    doc = document()
    encoded = wire.encode(doc)
    assert encoded is not None
    event = Touchpoint.model_validate(doc)
    assert encoded == (event.identity.partition_key(), event.model_dump_json().encode())


def test_a_uuid_object_is_written_in_its_canonical_form() -> None:
    uid = UUID("00000000-0000-4000-8000-000000000002")
    encoded = wire.encode(document(event_id=uid))
    assert encoded is not None and orjson.loads(encoded[1])["event_id"] == str(uid)


def _identity(**ids: str | None) -> dict[str, str | None]:
    return {**dict.fromkeys(document()["identity"]), **ids}


@pytest.mark.parametrize(
    "changes",
    [
        {"event_id": "00000000-0000-4000-8000-00000000000A"},  # not canonical: the model's
        {"event_type": "Viewed "},  # the model strips it
        {"touchpoint": "x" * 129},
        {"source": ""},
        {"occurred_at": datetime(2025, 3, 1, 11, tzinfo=timezone(timedelta(hours=1)))},
        {"occurred_at": datetime(2025, 3, 1, 11)},  # naive: the model refuses it
        {"properties": {"big": 2**64}},  # beyond what orjson writes
        {"properties": {" padded": 1}},
        {"properties": {"long": "x" * 1025}},
        {"properties": {"nested": {"a": 1}}},
        {"properties": {f"k{i}": i for i in range(65)}},
        {"identity": _identity()},  # no identifier: the model says which rule
        {"identity": _identity(customer_id="")},
        {"identity": _identity(customer_id="x" * 257)},
        {"session_id": ""},
        {"schema_version": 2},
        {"backfill": True},
        {"web": {"path": "/p/1"}},  # a field the document never has
    ],
)
def test_anything_in_doubt_is_left_to_the_model(changes: dict[str, Any]) -> None:
    assert wire.encode(document(**changes)) is None


def test_fields_out_of_order_are_left_to_the_model() -> None:
    doc = document()
    assert wire.encode({"channel": doc.pop("channel"), **doc}) is None


def test_the_partition_key_is_the_most_stable_identifier() -> None:
    doc = document(identity=_identity(anonymous_id="a", phone_hash="k1:ff"))
    encoded = wire.encode(doc)
    assert encoded is not None and encoded[0] == "phone_hash:k1:ff"


def call(size: int) -> dict[str, Any]:
    return {"type": "track", "event": "e", "userId": "u", "properties": {"p": "x" * size}}


def test_runs_that_fit_vouch_for_their_calls_and_others_are_measured_alone() -> None:
    calls = [call(100)] * 10 + [call(5_000)] + [call(100)] * 10
    body = len(orjson.dumps({"batch": calls}))
    known = within_limit(calls, 4_096, body)
    assert len(known) == len(calls)
    assert known[10] is False  # the big one is measured, as is anything in its run
    assert known[0] and known[-1]


def test_calls_nested_too_deeply_for_a_run_are_measured_alone() -> None:
    deep: Any = "x"
    for _level in range(254):
        deep = [deep]
    calls = [call(10), {"type": "track", "properties": {"deep": deep}}]
    assert within_limit(calls, 32_768, 2_000) == [False, False]
    assert within_limit([], 32_768, 0) == []
