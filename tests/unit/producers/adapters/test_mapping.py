"""producers.adapters.mapping: mapping files load, and bad ones fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.adapters.errors import RecordError
from producers.adapters.mapping import (
    ContactCenterMapping,
    MappingBase,
    PosMapping,
    load_mapping,
    map_code,
)
from schemas.config_files import ConfigFileError
from tests.unit.producers.adapters.builders import MAPPINGS

CONTACT_OK = """
channel = "call_center"
source = "cc"
[columns]
contact_id = "id"
queued_at = "q"
ended_at = "e"
phone = "ani"
"""
POS_OK = """
channel = "store"
source = "pos"
default_currency = "EUR"
[columns]
transaction_id = "t"
store_id = "s"
timestamp = "ts"
amount = "a"
loyalty_id = "l"
"""


def load(tmp_path: Path, text: str, model: type[MappingBase]) -> MappingBase:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return load_mapping(path, model)


def problems(tmp_path: Path, text: str, model: type[MappingBase]) -> list[str]:
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, text, model)
    assert str(tmp_path / "m.toml") in str(caught.value)
    return [f"{p.key}: {p.message}" if p.key else p.message for p in caught.value.problems]


@pytest.mark.parametrize(
    ("name", "model"),
    [("contact_center.toml", ContactCenterMapping), ("pos.toml", PosMapping)],
)
def test_shipped_mappings_load(name: str, model: type[MappingBase]) -> None:
    assert isinstance(load_mapping(MAPPINGS / name, model), model)


def test_minimal_mappings_get_defaults(tmp_path: Path) -> None:
    contact = load(tmp_path, CONTACT_OK, ContactCenterMapping)
    assert contact.time.format == "iso" and contact.time.timezone == "UTC"
    assert contact.file.format is None and contact.unidentified == "reject"
    assert isinstance(load(tmp_path, POS_OK, PosMapping), PosMapping)


@pytest.mark.parametrize(
    ("text", "model", "expected"),
    [
        pytest.param(
            CONTACT_OK.replace('queued_at = "q"\n', ""),
            ContactCenterMapping,
            "columns.queued_at: required",
            id="missing-column",
        ),
        pytest.param(
            CONTACT_OK.replace("queued_at", "queud_at"),
            ContactCenterMapping,
            "columns.queud_at: unknown key (misspelt?)",
            id="misspelt-column",
        ),
        pytest.param(
            CONTACT_OK.replace('phone = "ani"\n', ""),
            ContactCenterMapping,
            "columns: map at least one of phone, email, customer_id",
            id="no-identity-column",
        ),
        pytest.param(
            CONTACT_OK + '[time]\ntimezone = "Mars/Olympus"\n',
            ContactCenterMapping,
            "time.timezone: unknown time zone 'Mars/Olympus'",
            id="bad-timezone",
        ),
        pytest.param(
            CONTACT_OK + '[time]\nformat = "dd/mm/yyyy"\n',
            ContactCenterMapping,
            "time.format: 'dd/mm/yyyy' is neither",
            id="bad-time-format",
        ),
        pytest.param(
            CONTACT_OK + '[file]\ndelimiter = ";;"\n',
            ContactCenterMapping,
            "file.delimiter: String should have at most 1 character",
            id="long-delimiter",
        ),
        pytest.param(
            CONTACT_OK + '[file]\nencoding = "utf-9"\n',
            ContactCenterMapping,
            "file.encoding: unknown encoding 'utf-9'",
            id="bad-encoding",
        ),
        pytest.param(
            CONTACT_OK + '[file]\nformat = "xlsx"\n',
            ContactCenterMapping,
            "file.format: Input should be 'csv' or 'jsonl'",
            id="bad-file-format",
        ),
        pytest.param(
            CONTACT_OK.replace('"call_center"', '"store"'),
            ContactCenterMapping,
            "channel: Input should be 'call_center'",
            id="wrong-adapter",
        ),
        pytest.param(
            CONTACT_OK + '[values.disposition]\nRES = ""\n',
            ContactCenterMapping,
            "values.disposition.RES: String should have at least 1 character",
            id="empty-mapped-value",
        ),
        pytest.param(
            POS_OK + '[values.type]\nVOID = "cancel"\n',
            PosMapping,
            "values.type.VOID: Input should be 'purchase' or 'return'",
            id="bad-sale-type",
        ),
        pytest.param(
            POS_OK.replace('default_currency = "EUR"\n', ""),
            PosMapping,
            "map columns.currency or set default_currency",
            id="no-currency",
        ),
        pytest.param(
            POS_OK.replace('"EUR"', '"euro"'),
            PosMapping,
            "default_currency: String should match pattern",
            id="bad-currency",
        ),
        pytest.param(
            POS_OK.replace('source = "pos"', 'source = ""'),
            PosMapping,
            "source: String should have at least 1 character",
            id="empty-source",
        ),
        pytest.param(
            'unidentified = "drop"\n' + POS_OK,
            PosMapping,
            "unidentified: Input should be 'reject' or 'skip'",
            id="bad-policy",
        ),
    ],
)
def test_errors_name_the_key(
    tmp_path: Path, text: str, model: type[MappingBase], expected: str
) -> None:
    found = problems(tmp_path, text, model)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_listed(tmp_path: Path) -> None:
    text = CONTACT_OK.replace('queued_at = "q"\n', "").replace("source", "sauce")
    found = problems(tmp_path, text, ContactCenterMapping)
    assert {p.split(":")[0] for p in found} >= {"columns.queued_at", "source", "sauce"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("channel = ", "not valid TOML", id="toml-syntax"),
        pytest.param(None, "cannot read the file", id="missing-file"),
    ],
)
def test_unreadable_mapping(tmp_path: Path, text: str | None, expected: str) -> None:
    path = tmp_path / "m.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigFileError) as caught:
        load_mapping(path, ContactCenterMapping)
    assert caught.value.problems[0].message.startswith(expected)


@pytest.mark.parametrize(
    ("code", "values", "expected"),
    [
        ("RES", {}, "RES"),
        ("RES", {"RES": "resolved"}, "resolved"),
        ("OTHER", {"RES": "resolved", "*": "other"}, "other"),
        (None, {"RES": "resolved"}, None),
    ],
)
def test_value_maps(code: str | None, values: dict[str, str], expected: str | None) -> None:
    assert map_code("disposition", code, values) == expected


def test_unmapped_code_is_a_record_error() -> None:
    with pytest.raises(
        RecordError, match=r"^disposition: the value is not in \[values.disposition\]$"
    ):
        map_code("disposition", "XYZ", {"RES": "resolved"})
