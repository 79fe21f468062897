"""schemas.touchpoint: the touchpoint contract, identity keys and UTC normalization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from schemas.touchpoint import (
    IDENTIFIER_FIELDS,
    MAX_PROPERTIES,
    Channel,
    Identity,
    Touchpoint,
)
from tests.unit.builders import event_id, touchpoint


def error_locs(exc: ValidationError) -> set[tuple[str | int, ...]]:
    return {tuple(e["loc"]) for e in exc.errors()}


def test_a_minimal_event_validates_with_defaults() -> None:
    event = Touchpoint.model_validate(touchpoint(3))
    assert event.event_id == UUID(event_id(3))
    assert event.channel is Channel.WEB
    assert event.schema_version == 1
    assert event.received_at is None
    assert event.backfill is False
    assert event.identity == Identity(anonymous_id="anon-3")


@pytest.mark.parametrize("channel", ["web", "app", "call_center", "store"])
def test_every_channel_is_accepted(channel: str) -> None:
    assert Touchpoint.model_validate(touchpoint(channel=channel)).channel == Channel(channel)


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        pytest.param({"channel": "fax"}, ("channel",), id="unknown-channel"),
        pytest.param({"channel": "WEB"}, ("channel",), id="channel-wrong-case"),
        pytest.param({"channel": ""}, ("channel",), id="channel-empty"),
        pytest.param({"channel": 7}, ("channel",), id="channel-number"),
        pytest.param({"event_id": "not-a-uuid"}, ("event_id",), id="bad-uuid"),
        pytest.param({"source": "   "}, ("source",), id="blank-source"),
        pytest.param({"event_type": "x" * 129}, ("event_type",), id="long-event-type"),
        pytest.param({"schema_version": 2}, ("schema_version",), id="future-schema"),
        pytest.param({"schema_version": 0}, ("schema_version",), id="schema-zero"),
        pytest.param({"identity": {}}, ("identity",), id="no-identifier"),
        pytest.param(
            {"identity": {"customer_id": None, "device_id": None}}, ("identity",), id="all-null"
        ),
        pytest.param({"identity": {"device_id": ""}}, ("identity", "device_id"), id="empty-id"),
        pytest.param(
            {"identity": {"device_id": "d", "ssn": "1"}}, ("identity", "ssn"), id="extra-identity"
        ),
        pytest.param({"colour": "red"}, ("colour",), id="extra-field"),
        pytest.param(
            {"occurred_at": "2025-03-01T11:59:00"}, ("occurred_at",), id="naive-occurred_at"
        ),
        pytest.param(
            {"received_at": "2025-03-01T11:59:00"}, ("received_at",), id="naive-received_at"
        ),
        pytest.param({"properties": {"k": [1]}}, ("properties", "k"), id="list-property"),
        pytest.param({"properties": {"k": "v" * 1025}}, ("properties", "k"), id="long-property"),
    ],
)
def test_invalid_events_are_rejected_at_the_field(
    overrides: dict[str, Any], loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        Touchpoint.model_validate(touchpoint(**overrides))
    locs = error_locs(caught.value)
    assert any(found[: len(loc)] == loc for found in locs), locs


def test_a_naive_python_datetime_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        Touchpoint.model_validate(touchpoint(occurred_at=datetime(2025, 3, 1, 12)))
    assert error_locs(caught.value) == {("occurred_at",)}


@pytest.mark.parametrize("field", ["event_id", "channel", "source", "event_type", "identity"])
def test_required_fields(field: str) -> None:
    raw = touchpoint()
    del raw[field]
    with pytest.raises(ValidationError) as caught:
        Touchpoint.model_validate(raw)
    assert (field,) in error_locs(caught.value)


@pytest.mark.parametrize(("count", "ok"), [(0, True), (MAX_PROPERTIES, True), (65, False)])
def test_properties_are_limited_to_64(count: int, ok: bool) -> None:
    raw = touchpoint(properties={f"p{i}": i for i in range(count)})
    if ok:
        assert len(Touchpoint.model_validate(raw).properties) == count
    else:
        with pytest.raises(ValidationError) as caught:
            Touchpoint.model_validate(raw)
        assert ("properties",) in error_locs(caught.value)


@pytest.mark.parametrize("field", IDENTIFIER_FIELDS)
def test_any_single_identifier_is_enough(field: str) -> None:
    assert getattr(Identity.model_validate({field: "x"}), field) == "x"


def test_identity_is_frozen() -> None:
    identity = Identity(device_id="d")
    with pytest.raises(ValidationError):
        identity.device_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("identifiers", "key"),
    [
        ({f: f"v-{f}" for f in IDENTIFIER_FIELDS}, "customer_id:v-customer_id"),
        ({"anonymous_id": "a", "loyalty_id": "L1", "device_id": "d"}, "loyalty_id:L1"),
        ({"phone_hash": "p", "email_hash": "e", "loyalty_id": "L1"}, "loyalty_id:L1"),
        ({"anonymous_id": "a", "phone_hash": "p", "email_hash": "e"}, "email_hash:e"),
        ({"anonymous_id": "a", "device_id": "d", "phone_hash": "p"}, "phone_hash:p"),
        ({"anonymous_id": "a", "device_id": "d"}, "device_id:d"),
        ({"anonymous_id": "a"}, "anonymous_id:a"),
    ],
)
def test_partition_key_takes_the_most_stable_identifier(
    identifiers: dict[str, str], key: str
) -> None:
    assert Identity.model_validate(identifiers).partition_key() == key


@pytest.mark.parametrize(
    "text",
    ["2025-03-01T13:30:00+01:30", "2025-03-01T07:00:00-05:00", "2025-03-01T12:00:00+00:00"],
)
def test_normalize_utc_keeps_the_instant_and_moves_it_to_utc(text: str) -> None:
    event = Touchpoint.model_validate(touchpoint(occurred_at=text, received_at=text))
    instant = datetime.fromisoformat(text)
    same = event.normalize_utc()
    assert same is event
    for value in (event.occurred_at, event.received_at):
        assert value is not None
        assert value == instant
        assert value.utcoffset() == timedelta(0)
    assert event.model_dump(mode="json")["occurred_at"].endswith("Z")


def test_normalize_utc_converts_python_datetimes_with_an_offset() -> None:
    tz = timezone(timedelta(hours=-3))
    local = datetime(2025, 3, 1, 9, 0, tzinfo=tz)
    event = Touchpoint.model_validate(touchpoint(occurred_at=local)).normalize_utc()
    assert event.occurred_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.received_at is None
