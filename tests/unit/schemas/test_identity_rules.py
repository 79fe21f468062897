"""schemas.identity_rules: defaults, junk values and validation of the guards."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from schemas.identity_rules import DEFAULT_CAPS, IdentityRules, normalize
from schemas.touchpoint import IDENTIFIER_FIELDS


def test_defaults_follow_the_domain() -> None:
    rules = IdentityRules()
    assert rules.priorities == IDENTIFIER_FIELDS
    assert rules.caps == dict(DEFAULT_CAPS) and rules.caps["customer_id"] == 1
    assert rules.allow_customer_id_merge is False
    assert rules.max_identifiers is None
    assert rules.rank()["customer_id"] == 0 and rules.rank()["anonymous_id"] == 5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("null", "null"),
        (" NULL ", "null"),
        ('"null"', "null"),
        ("'Undefined'", "undefined"),
        ("\"'guest'\"", "guest"),
        ('""', ""),
        ("`0`", "0"),
        ('"unbalanced', '"unbalanced'),
        ("AbC", "abc"),
    ],
)
def test_normalize_trims_unquotes_and_lowercases(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "null",
        "NULL",
        '"null"',
        "'null'",
        "undefined",
        "0",
        "anonymous",
        "Guest",
        "[object Object]",
        "NaN",
        "None",
        "00000000-0000-0000-0000-000000000000",
    ],
)
def test_default_denylist_catches_junk_in_any_case_and_quoting(value: str) -> None:
    assert IdentityRules().junk_reason(value) == "denylist"


@pytest.mark.parametrize("value", ["cust-0", "guest-42", "null-island", "10", "a1b2", "0x0"])
def test_real_values_are_usable(value: str) -> None:
    assert IdentityRules().junk_reason(value) is None


def test_extra_values_and_patterns_add_to_the_defaults() -> None:
    rules = IdentityRules(extra_denylist=frozenset({' "N.A." '}), deny_patterns=(r"test-\d+",))
    assert rules.junk_reason("n.a.") == "denylist"
    assert rules.junk_reason("null") == "denylist"
    assert rules.junk_reason("TEST-17") == "pattern"
    assert rules.junk_reason("'test-17'") == "pattern"
    assert rules.junk_reason("my-test-17") is None  # patterns match the whole value


def test_denylist_replaces_the_defaults_when_given() -> None:
    rules = IdentityRules(denylist=frozenset({"x"}))
    assert rules.junk_reason("X") == "denylist"
    assert rules.junk_reason("null") is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"deny_patterns": ["(unclosed"]}, "not a regular expression"),
        ({"caps": {"shoe_size": 2}}, "unknown identifier types"),
        ({"caps": {"device_id": 0}}, "greater than or equal to 1"),
        ({"priorities": ["customer_id"]}, "each identifier type once"),
        ({"priorities": [*IDENTIFIER_FIELDS, "customer_id"]}, "each identifier type once"),
        ({"caps": {"customer_id": 2}}, "needs allow_customer_id_merge"),
        ({"allow_customer_id_merge": True}, "needs caps.customer_id > 1"),
        ({"max_identifiers": 1}, "greater than or equal to 2"),
        ({"cap": {}}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_rules_are_refused_with_a_clear_message(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        IdentityRules.model_validate(fields)


def test_customer_merge_can_be_allowed_with_a_cap() -> None:
    rules = IdentityRules(allow_customer_id_merge=True, caps={"customer_id": 3})
    assert rules.caps == {"customer_id": 3}
    assert IdentityRules(allow_customer_id_merge=True, caps={}).caps == {}


def test_rules_round_trip_as_json_with_a_stable_dump() -> None:
    rules = IdentityRules(extra_denylist=frozenset({"b", "a"}), deny_patterns=("x+",))
    dumped = rules.model_dump(mode="json")
    assert dumped["extra_denylist"] == ["a", "b"]
    assert dumped["denylist"] == sorted(dumped["denylist"])
    again = IdentityRules.model_validate(dumped)
    assert again.model_dump() == rules.model_dump()
    assert again.junk_reason("XX") == "pattern"


def test_rules_are_immutable() -> None:
    with pytest.raises(ValidationError):
        IdentityRules().allow_customer_id_merge = True  # type: ignore[misc]
