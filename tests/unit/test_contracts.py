"""schemas.contracts and the released contract versions (schemas/COMPATIBILITY.md)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from deploy.cli import main
from schemas.contracts import CONTRACTS, SCHEMA_DIR, file_name, json_schema, render
from schemas.touchpoint import Channel, Touchpoint

ROOT = Path(__file__).resolve().parents[2]
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
    assert versions == ["v1"]  # add the new folder here when a version is released
    for version in versions:
        channels = Counter(
            json.loads(p.read_bytes())["channel"] for p in SAMPLES if p.parent.name == version
        )
        assert all(channels[c.value] >= 2 for c in Channel), (version, channels)
