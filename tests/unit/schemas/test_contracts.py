"""schemas.contracts and the released contract versions (schemas/COMPATIBILITY.md)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from deploy.cli import main
from schemas.contracts import CONTRACTS, SCHEMA_DIR, file_name, json_schema, render
from schemas.touchpoint import (
    BLOCK_FIELDS,
    SCHEMA_VERSION,
    VERSION_2_FIELDS,
    AppDetail,
    Attribution,
    CallCenterDetail,
    Channel,
    StoreDetail,
    Touchpoint,
    WebDetail,
)
from stream_processors.ingest.core.admission import Ingest

ROOT = Path(__file__).resolve().parents[3]
RELEASED = ROOT / "tests" / "fixtures" / "contracts"
SAMPLES = sorted(RELEASED.glob("v*/*.json"))


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_checked_in_schema_matches_the_model(name: str) -> None:
    checked_in = (SCHEMA_DIR / file_name(name)).read_text(encoding="utf-8")
    assert checked_in == render(name), (
        f"schemas/json/{file_name(name)} is out of date with the model: run "
        "`journeys schema export`, commit the diff, and check schemas/COMPATIBILITY.md "
        "for whether the change needs a new schema_version"
    )


def test_no_stale_schema_files() -> None:
    assert {p.name for p in SCHEMA_DIR.glob("*.json")} == {file_name(n) for n in CONTRACTS}


def test_the_schema_states_the_identity_rule() -> None:
    identity = json_schema("touchpoint")["$defs"]["Identity"]
    required = {tuple(rule["required"]) for rule in identity["anyOf"]}
    assert ("customer_id",) in required and ("phone_hash",) in required
    assert json_schema("touchpoint")["$schema"].endswith("2020-12/schema")


def test_export_writes_what_is_checked_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "export", "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.count("wrote ") == len(CONTRACTS)
    for name in CONTRACTS:
        written = (tmp_path / "out" / file_name(name)).read_text(encoding="utf-8")
        assert written == (SCHEMA_DIR / file_name(name)).read_text(encoding="utf-8")
        json.loads(written)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_released_samples_keep_validating(path: Path) -> None:
    event = Touchpoint.model_validate_json(path.read_bytes())
    assert f"v{event.schema_version}" == path.parent.name


def test_every_released_version_has_samples_of_every_channel() -> None:
    versions = sorted({p.parent.name for p in SAMPLES})
    assert versions == ["v1", "v2", "v3"]  # add the new folder here when a version is released
    assert versions[-1] == f"v{SCHEMA_VERSION}"
    for version in versions:
        channels = Counter(
            json.loads(p.read_bytes())["channel"] for p in SAMPLES if p.parent.name == version
        )
        assert all(channels[c.value] >= 2 for c in Channel), (version, channels)


def samples(version: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_bytes()) for p in SAMPLES if p.parent.name == version]


def test_version_1_samples_have_no_version_2_fields() -> None:
    assert all(not set(doc) & set(VERSION_2_FIELDS) for doc in samples("v1"))


def test_version_3_samples_use_every_attribution_field() -> None:
    docs = samples("v3")
    used = {field for doc in docs for field in doc.get("attribution", {})}
    assert used == set(Attribution.model_fields)
    assert all("attribution" in doc for doc in docs)


@pytest.mark.parametrize("version", [1, 2])
def test_attribution_needs_schema_version_3(version: int) -> None:
    sample = json.loads((RELEASED / "v3" / "store_visit.json").read_bytes())
    result = ingest({**sample, "schema_version": version})
    (rejection,) = result.rejected
    assert [e.field for e in rejection.errors] == ["attribution"]
    assert f"was added in schema_version 3; this event says schema_version {version}" in (
        rejection.detail
    )


def test_version_2_samples_use_every_typed_field() -> None:
    docs = samples("v2")
    for doc in docs:
        blocks = [name for name in BLOCK_FIELDS if name in doc]
        assert blocks == [doc["channel"]], doc["event_id"]
    models: dict[str, type[BaseModel]] = {
        "web": WebDetail,
        "app": AppDetail,
        "call_center": CallCenterDetail,
        "store": StoreDetail,
    }
    for name, model in models.items():
        used = {field for doc in docs for field in doc.get(name, {})}
        assert used == set(model.model_fields), name
    stated = [entry for doc in docs for entry in doc.get("friction", [])]
    assert {field for entry in stated for field in entry} == {"signal", "detail", "value"}


# -- through the ingest stage --------------------------------------------------------------------

LATER = datetime(2025, 7, 1, tzinfo=UTC)  # after every sample, so none is in the future
ENVELOPE_DEFAULTS = {
    "schema_version",
    "received_at",
    "session_id",
    "touchpoint",
    "properties",
    "backfill",
}


def ingest(raw: dict[str, Any]) -> Any:
    return Ingest({}, horizon=timedelta(days=7), future_tolerance=timedelta(minutes=5)).process(
        [raw], LATER
    )


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_released_samples_pass_ingest_unchanged(path: Path) -> None:
    sample = json.loads(path.read_bytes())
    result = ingest(sample)
    assert result.rejected == []
    (forwarded,) = [orjson.loads(f) for f in result.fragments]
    # Ingest adds the envelope's defaults and moves times to UTC; nothing else changes.
    assert set(forwarded) - set(sample) <= ENVELOPE_DEFAULTS
    for key, value in sample.items():
        if key == "received_at" and value is None:
            assert forwarded[key] == "2025-07-01T00:00:00Z"  # set on ingest
        elif key in ("occurred_at", "received_at"):
            assert forwarded[key].endswith("Z")
            assert datetime.fromisoformat(forwarded[key]) == datetime.fromisoformat(value)
        elif key == "identity":
            assert {k: v for k, v in forwarded[key].items() if v is not None} == value
        else:
            assert forwarded[key] == value, key


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"schema_version": 4}, "schema_version", "less than or equal to 3"),
        ({"schema_version": "next"}, "schema_version", "valid integer"),
        ({"store": {"store_id": "042"}}, "store", "this event's channel is web"),
        ({"web": {"http_status": 700}}, "web.http_status", "less than or equal to 599"),
        ({"schema_version": 1}, "web", "was added in schema_version 2"),
    ],
)
def test_ingest_rejects_naming_the_field(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    sample = json.loads((RELEASED / "v2" / "web_page_view.json").read_bytes())
    result = ingest({**sample, **overrides})
    (rejection,) = result.rejected
    assert rejection.reason == "invalid_field" and result.fragments == []
    assert [e.field for e in rejection.errors] == [field]
    assert message in rejection.detail and rejection.detail.startswith(f"{field}: ")


def test_the_schema_states_the_version_2_rules() -> None:
    rules = json_schema("touchpoint")["allOf"]
    for block in BLOCK_FIELDS:
        (rule,) = [r for r in rules if r["if"]["required"] == [block]]
        assert rule["then"]["properties"]["channel"] == {"const": block}
        assert rule["then"]["properties"]["schema_version"] == {"minimum": 2}
        assert "schema_version" in rule["then"]["required"]
    (friction,) = [r for r in rules if r["if"]["required"] == ["friction"]]
    assert friction["then"]["properties"]["schema_version"] == {"minimum": 2}
    (attribution,) = [r for r in rules if r["if"]["required"] == ["attribution"]]
    assert attribution["then"]["properties"]["schema_version"] == {"minimum": 3}
