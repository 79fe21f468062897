"""schemas.touchpoint: the touchpoint contract, identity keys and UTC normalization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas.touchpoint import (
    BLOCK_FIELDS,
    IDENTIFIER_FIELDS,
    MAX_PROPERTIES,
    MAX_STATED_SIGNALS,
    VERSION_2_FIELDS,
    AppDetail,
    CallCenterDetail,
    Channel,
    Identity,
    StoreDetail,
    Touchpoint,
    WebDetail,
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
        pytest.param({"schema_version": 4}, ("schema_version",), id="future-schema"),
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


# -- schema_version 2: typed channel blocks and stated friction --------------------------------

BLOCKS: dict[str, dict[str, Any]] = {
    "web": {"path": "/checkout/payment", "http_status": 502, "load_ms": 840, "rage_clicks": 3},
    "app": {"screen": "checkout", "app_version": "5.13.0", "os": "Android", "crash": True},
    "call_center": {"contact_id": "C-1", "wait_seconds": 412.5, "abandoned": True},
    "store": {"store_id": "042", "amount": 45.5, "currency": "GBP", "is_return": True},
}


def v2(channel: str = "web", **overrides: Any) -> dict[str, Any]:
    """A valid version 2 event of `channel` carrying its typed block."""
    return touchpoint(channel=channel, schema_version=2, **{channel: BLOCKS[channel]}, **overrides)


def rejected(raw: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        Touchpoint.model_validate(raw)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize("channel", BLOCK_FIELDS)
def test_a_version_2_event_carries_the_block_of_its_channel(channel: str) -> None:
    event = Touchpoint.model_validate(v2(channel, friction=[{"signal": "retry", "value": 2}]))
    assert event.schema_version == 2
    assert getattr(event, channel).model_dump(exclude_none=True) == BLOCKS[channel]
    assert event.friction[0].signal == "retry"


@pytest.mark.parametrize(
    ("channel", "block"),
    [(c, b) for c in BLOCK_FIELDS for b in BLOCK_FIELDS if b != c],
)
def test_a_block_on_another_channel_is_rejected_naming_it(channel: str, block: str) -> None:
    raw = touchpoint(channel=channel, schema_version=2, **{block: BLOCKS[block]})
    assert rejected(raw) == [
        (
            (block,),
            f"a `{block}` block belongs on channel {block} events; "
            f"this event's channel is {channel}",
        )
    ]


@pytest.mark.parametrize("field", VERSION_2_FIELDS)
@pytest.mark.parametrize("version", [None, 1])
def test_version_2_fields_need_schema_version_2(field: str, version: int | None) -> None:
    value = [{"signal": "error"}] if field == "friction" else BLOCKS[field]
    raw = touchpoint(channel="web" if field == "friction" else field, **{field: value})
    if version is not None:
        raw["schema_version"] = version
    assert rejected(raw) == [
        ((field,), f"`{field}` was added in schema_version 2; this event says schema_version 1")
    ]


def test_unset_version_2_fields_mean_a_version_1_event() -> None:
    raw = touchpoint(web=None, app=None, call_center=None, store=None, friction=[])
    event = Touchpoint.model_validate(raw)
    assert event.schema_version == 1 and event.web is None and event.friction == []
    assert event == Touchpoint.model_validate(touchpoint())


def test_a_version_2_event_needs_no_block() -> None:
    assert Touchpoint.model_validate(touchpoint(schema_version=2)).schema_version == 2


def test_serializing_leaves_out_what_the_producer_did_not_state() -> None:
    v1 = Touchpoint.model_validate(touchpoint()).model_dump(mode="json")
    assert not set(v1) & set(VERSION_2_FIELDS)
    raw = v2("call_center", friction=[{"signal": "long_queue_wait"}])
    doc = Touchpoint.model_validate(raw).model_dump(mode="json")
    assert doc["call_center"] == BLOCKS["call_center"]
    assert doc["friction"] == [{"signal": "long_queue_wait"}]
    assert "web" not in doc and "store" not in doc


@pytest.mark.parametrize(
    ("channel", "fields", "loc"),
    [
        ("web", {"http_status": 600}, ("web", "http_status")),
        ("web", {"http_status": 99}, ("web", "http_status")),
        ("web", {"http_status": "502"}, ("web", "http_status")),  # typed: no coercion
        ("app", {"crash": 1}, ("app", "crash")),
        ("app", {"crash": "true"}, ("app", "crash")),
        ("call_center", {"transfers": 1.5}, ("call_center", "transfers")),
        ("store", {"amount": "45.50"}, ("store", "amount")),
        ("web", {"load_ms": -1}, ("web", "load_ms")),
        ("web", {"load_ms": 3_600_001}, ("web", "load_ms")),
        ("web", {"rage_clicks": 10_001}, ("web", "rage_clicks")),
        ("web", {"search_results": -1}, ("web", "search_results")),
        ("web", {"path": "/search?q=anna@example.com"}, ("web", "path")),
        ("web", {"path": "checkout"}, ("web", "path")),
        ("web", {"referrer": "x" * 2049}, ("web", "referrer")),
        ("web", {"colour": "red"}, ("web", "colour")),
        ("app", {"app_version": "1" * 65}, ("app", "app_version")),
        ("app", {"crash": "maybe"}, ("app", "crash")),
        ("app", {"response_ms": float("nan")}, ("app", "response_ms")),
        ("app", {"screen": ""}, ("app", "screen")),
        ("call_center", {"wait_seconds": -0.5}, ("call_center", "wait_seconds")),
        ("call_center", {"handle_seconds": 2_592_001}, ("call_center", "handle_seconds")),
        ("call_center", {"transfers": 101}, ("call_center", "transfers")),
        ("call_center", {"survey_score": 11}, ("call_center", "survey_score")),
        ("call_center", {"agent": "a" * 129}, ("call_center", "agent")),
        ("store", {"amount": -5}, ("store", "amount")),
        ("store", {"amount": float("inf")}, ("store", "amount")),
        ("store", {"currency": "eur"}, ("store", "currency")),
        ("store", {"items": 1_000_000_001}, ("store", "items")),
        ("store", {"till": "t" * 129}, ("store", "till")),
    ],
)
def test_typed_fields_are_bounded(
    channel: str, fields: dict[str, Any], loc: tuple[str, ...]
) -> None:
    raw = touchpoint(channel=channel, schema_version=2, **{channel: fields})
    assert [found for found, _ in rejected(raw)] == [loc]


@pytest.mark.parametrize(
    ("friction", "loc"),
    [
        ([{"signal": "error"}] * (MAX_STATED_SIGNALS + 1), ("friction",)),
        ([{"signal": "payment_failed"}], ("friction", 0, "signal")),
        ([{"detail": "no signal"}], ("friction", 0, "signal")),
        ([{"signal": "error", "value": -1}], ("friction", 0, "value")),
        ([{"signal": "error", "detail": "d" * 257}], ("friction", 0, "detail")),
        ([{"signal": "error", "severity": "high"}], ("friction", 0, "severity")),
        (None, ("friction",)),
    ],
)
def test_stated_friction_is_bounded(friction: Any, loc: tuple[str | int, ...]) -> None:
    raw = touchpoint(schema_version=2, friction=friction)
    assert [found for found, _ in rejected(raw)] == [loc]


MODELS: dict[str, type[BaseModel]] = {
    "web": WebDetail,
    "app": AppDetail,
    "call_center": CallCenterDetail,
    "store": StoreDetail,
}
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 2_000_000_000_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=140),
    st.sampled_from(["/checkout", "EUR", "eur", "/a?b=1", "", " x "]),
)


@st.composite
def blocks(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    channel = draw(st.sampled_from(BLOCK_FIELDS))
    block = draw(st.sampled_from(BLOCK_FIELDS))  # mostly another channel's
    names = [*MODELS[block].model_fields, "colour"]
    fields = draw(st.dictionaries(st.sampled_from(names), values, max_size=6))
    return channel, block, fields


@settings(max_examples=400, deadline=None)
@given(case=blocks(), version=st.sampled_from([None, 1, 2]))
def test_any_block_is_accepted_unchanged_or_refused_naming_it(
    case: tuple[str, str, dict[str, Any]], version: int | None
) -> None:
    channel, block, fields = case
    raw = touchpoint(channel=channel, **{block: fields})
    if version is not None:
        raw["schema_version"] = version
    try:
        event = Touchpoint.model_validate(raw)
    except ValidationError as exc:
        assert all(e["loc"][0] == block for e in exc.errors()), exc.errors()
        return
    assert block == channel and version == 2
    # What leaves the model (ingest's fragment) is what came in, less the unset fields.
    sent = {k: v for k, v in fields.items() if v is not None}
    again = orjson.loads(event.model_dump_json())[block]
    assert set(again) == set(sent)
    assert all(
        again[k] == v or (isinstance(v, str) and again[k] == v.strip()) for k, v in sent.items()
    )
