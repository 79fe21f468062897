"""JSON Schema of the contracts that cross topics, generated from the pydantic models.

The generated files are checked in under `schemas/json/` so teams that do not use Python can
validate their events; a unit test regenerates them in memory and fails when the models and
the files disagree. `schemas/COMPATIBILITY.md` says which model changes need a new
`schema_version`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.deadletter import DeadLetter, SinkDeadLetter
from schemas.touchpoint import BLOCK_FIELDS, IDENTIFIER_FIELDS, Touchpoint

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parent / "json"
# File stem -> model. The touchpoint is what producers write to `raw`; the dead letter is
# what the stages' `dlq.*` topics carry; the sink dead letter is what `dlq.sink` carries (rows
# ClickHouse refused), which tools other than `journeys sink replay-dead-letters` may read.
CONTRACTS: dict[str, type[BaseModel]] = {
    "touchpoint": Touchpoint,
    "deadletter": DeadLetter,
    "sink-deadletter": SinkDeadLetter,
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one contract, as producers must write it."""
    schema = CONTRACTS[name].model_json_schema(mode="validation")
    identity = schema.get("$defs", {}).get("Identity")
    if identity is not None:
        identity["anyOf"] = _at_least_one_identifier()
    if CONTRACTS[name] is Touchpoint:
        schema["allOf"] = _version_2_rules()
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": f"urn:journeys:schema:{name}", **schema}


def _at_least_one_identifier() -> list[dict[str, Any]]:
    """`Identity` requires one identifier in a model validator, which pydantic cannot show in
    JSON Schema; spelled out here so other languages' validators refuse `"identity": {}` too."""
    return [
        {"required": [name], "properties": {name: {"type": "string"}}} for name in IDENTIFIER_FIELDS
    ]


def _version_2_rules() -> list[dict[str, Any]]:
    """`Touchpoint` checks these in field validators, which JSON Schema does not show: a
    channel block only on an event of that channel, the fields added in version 2 only
    with `schema_version` 2 or later (it defaults to 1, so it must be given), and
    `attribution` only with 3 or later."""
    version_2 = {"required": ["schema_version"], "properties": {"schema_version": {"minimum": 2}}}
    rules: list[dict[str, Any]] = [
        {
            "if": {"required": [block], "properties": {block: {"type": "object"}}},
            "then": {
                "required": ["channel", "schema_version"],
                "properties": {"channel": {"const": block}, "schema_version": {"minimum": 2}},
            },
        }
        for block in BLOCK_FIELDS
    ]
    rules.append(
        {
            "if": {"required": ["friction"], "properties": {"friction": {"minItems": 1}}},
            "then": version_2,
        }
    )
    # Version 3's `attribution`, on any channel.
    rules.append(
        {
            "if": {"required": ["attribution"], "properties": {"attribution": {"type": "object"}}},
            "then": {
                "required": ["schema_version"],
                "properties": {"schema_version": {"minimum": 3}},
            },
        }
    )
    return rules


def file_name(name: str) -> str:
    return f"{name}.schema.json"


def render(name: str) -> str:
    """The exact text of one checked-in schema file (stable, so diffs stay readable)."""
    return json.dumps(json_schema(name), indent=2, ensure_ascii=False) + "\n"


def export(out_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Write every contract's schema file into `out_dir`; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CONTRACTS:
        path = out_dir / file_name(name)
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written
