"""Contact details never leave the collector raw; properties fit the bounded map."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from producers.collector import properties
from producers.collector.scrub import contact_kind
from producers.contact_details import looks_like_phone
from schemas.touchpoint import MAX_PROPERTIES
from tests.unit.producers.collector.builders import HASHER, SCRUBBER


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("email", "email"),
        ("Email_Address", "email"),
        ("e-mail", "email"),
        ("phone", "phone"),
        ("phoneNumber", "phone"),
        ("mobile", "phone"),
        ("emails_sent", None),
        ("sku", None),
    ],
)
def test_contact_keys(key: str, kind: str | None) -> None:
    assert contact_kind(key) == kind


@pytest.mark.parametrize(
    "value",
    ["+44 20 7946 0958", "(555) 123-4567", "555-123-4567", "555.123.4567", "+4915112345678"],
)
def test_phone_numbers_are_recognized(value: str) -> None:
    assert looks_like_phone(value)


@pytest.mark.parametrize(
    "value",
    ["1234567890", "192.168.100.200", "2025-03-01", "12:30", "v1.2.3", "+12", "order 5551234567"],
)
def test_numbers_that_are_not_phones_stay(value: str) -> None:
    assert not looks_like_phone(value)


def test_emails_are_hashed_anywhere_in_a_text_even_url_encoded() -> None:
    text = SCRUBBER.text("mail Jane.Doe@Example.com or see /u?e=bob%40x.org&a=1")
    assert "@" not in text and "%40" not in text
    assert HASHER.email("jane.doe@example.com") in text
    assert HASHER.email("bob@x.org") in text


def test_phones_with_a_plus_are_hashed_inside_texts() -> None:
    text = SCRUBBER.text("call +1 (555) 123-4567 today")
    assert text == f"call {HASHER.phone('+1 (555) 123-4567')} today"


def test_a_whole_value_phone_is_hashed() -> None:
    assert SCRUBBER.text("(555) 123-4567") == HASHER.phone("(555) 123-4567")


def test_contact_keys_hash_any_scalar_and_refuse_containers() -> None:
    assert SCRUBBER.value("phone", 5551234567) == HASHER.phone("5551234567")
    assert SCRUBBER.value("email", {"a": 1}) is None
    assert SCRUBBER.value("email", True) is None


def test_tree_scrubs_keys_values_and_deep_nesting() -> None:
    deep: Any = "x@y.io"
    for _ in range(50):
        deep = [deep]
    doc = {"traits": {"email": "a@b.io", "phone": "5551234567"}, "note": "c@d.io", "deep": deep}
    raw = orjson.dumps(SCRUBBER.tree(doc))
    for secret in (b"a@b.io", b"5551234567", b"c@d.io", b"x@y.io"):
        assert secret not in raw


def test_hostile_long_texts_stay_fast() -> None:
    # Bounded repetitions keep the e-mail search linear; this would take minutes otherwise.
    SCRUBBER.text("a" * 200_000 + "@")
    SCRUBBER.text("a@" + "b." * 100_000)


def bound(values: dict[str, Any]) -> properties.Bounded:
    return properties.bound(values.items(), SCRUBBER)


def test_nested_objects_flatten_and_lists_become_json() -> None:
    out = bound({"product": {"sku": "s1", "dims": {"w": 2}}, "tags": ["a", {"b": 1}]})
    assert out.values == {"product.sku": "s1", "product.dims.w": 2, "tags": '["a",{"b":1}]'}


def test_objects_deeper_than_the_flatten_depth_become_json() -> None:
    out = bound({"a": {"b": {"c": {"d": 1}}}})
    assert out.values == {"a.b.c": '{"d":1}'}


def test_long_strings_are_truncated_with_a_note() -> None:
    out = bound({"text": "x" * 5000})
    assert out.values["text"] == "x" * properties.MAX_STRING
    assert out.notes == [f"properties.text: truncated to {properties.MAX_STRING} characters"]


def test_bad_keys_are_dropped_with_a_note() -> None:
    out = bound({"  ": 1, "k" * 200: 2, "ok": 3})
    assert out.values == {"ok": 3}
    assert len(out.notes) == 2


def test_beyond_the_limit_keys_are_dropped_and_listed() -> None:
    out = bound({f"p{i}": i for i in range(100)})
    assert len(out.values) == MAX_PROPERTIES
    assert out.values[properties.DROPPED_KEY] == ",".join(f"p{i}" for i in range(63, 100))
    assert any("37 dropped" in note for note in out.notes)


def test_contact_details_inside_properties_are_hashed_in_place() -> None:
    out = bound(
        {"customer": {"email": "a@b.io"}, "support": "write to help@shop.io", "tags": ["x@y.io"]}
    )
    assert out.values["customer.email"] == HASHER.email("a@b.io")
    assert "@" not in str(out.values)
