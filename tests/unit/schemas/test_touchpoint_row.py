"""schemas.touchpoint_row: the row mirrors `Touchpoint`, vouches only for events the model
accepts, and writes them as the model does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.touchpoint import Identity, Touchpoint
from schemas.touchpoint_row import (
    IdentityRow,
    TouchpointRow,
    fragment_event_id,
    read_row,
    row_json,
)
from stream_processors.ingest.core.admission import Ingest
from tests.unit.builders import NOW, touchpoint
from tests.unit.ingest.model_path import ModelPathIngest

V2 = Path(__file__).resolve().parents[2] / "fixtures" / "contracts" / "v2"


def test_the_rows_have_the_models_fields_in_the_models_order() -> None:
    # The fragment's key order is the row's; the model's serializer is the contract.
    assert list(TouchpointRow.__annotations__) == list(Touchpoint.model_fields)
    assert list(IdentityRow.__annotations__) == list(Identity.model_fields)


@pytest.mark.parametrize("path", sorted(V2.glob("*.json")), ids=lambda p: p.stem)
def test_a_v2_sample_is_read_and_written_as_the_model_writes_it(path: Path) -> None:
    raw = orjson.loads(path.read_bytes())
    row = read_row(raw)
    assert row is not None
    fragment = row_json(row)
    assert fragment == Touchpoint.model_validate(raw).model_dump_json().encode()
    assert fragment is not None and fragment_event_id(fragment) == str(uuid.UUID(raw["event_id"]))


@pytest.mark.parametrize(
    "overrides",
    [
        {"identity": {"device_id": None}},  # the model validator: one identifier at least
        {"web": {"path": "/a"}},  # version 2 field on a version 1 event
        {"schema_version": 2, "app": {"crash": True}},  # another channel's block
        {"friction": [{"signal": "error"}]},  # stated friction on a version 1 event
        {"properties": {"big": 2**64}},  # beyond what orjson writes: the model decides
    ],
)
def test_what_the_row_cannot_vouch_for_goes_to_the_model(overrides: dict[str, Any]) -> None:
    raw = touchpoint(1, **overrides)
    row = read_row(raw)
    assert row is None or row_json(row) is None
    model = ModelPathIngest({}, timedelta(days=7), timedelta(minutes=5)).process([raw], NOW)
    ingest = Ingest({}, timedelta(days=7), timedelta(minutes=5)).process([raw], NOW)
    assert (ingest.fragments, ingest.rejected) == (model.fragments, model.rejected)


@pytest.mark.parametrize(
    "overrides",
    [
        {"web": None},  # unset: left out, as the model leaves it out
        {"schema_version": 2, "web": {}},  # an empty block is written, as the model writes it
        {"schema_version": 2, "web": {"path": "/a", "load_ms": None}, "friction": []},
        {"schema_version": 2, "friction": [{"signal": "error", "detail": None, "value": 3}]},
        {"received_at": "2025-03-01T08:59:30.5-03:00", "occurred_at": "2025-03-01T13:00+01:00"},
    ],
)
def test_unset_fields_and_offsets_come_out_as_the_model_writes_them(
    overrides: dict[str, Any],
) -> None:
    raw = touchpoint(1, **overrides)
    assert read_row(raw) is not None
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    model = ModelPathIngest({}, timedelta(days=7), timedelta(minutes=5)).process([raw], now)
    ingest = Ingest({}, timedelta(days=7), timedelta(minutes=5)).process([raw], now)
    assert ingest.fragments == model.fragments and len(ingest.fragments) == 1
