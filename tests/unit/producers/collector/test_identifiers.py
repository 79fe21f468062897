"""Which trait names carry which identifier (producers/collector/identifiers.py)."""

from __future__ import annotations

import pytest

from producers.collector.identifiers import IdentifierTraits


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("loyalty_id", "loyalty_id"),
        ("loyaltyId", "loyalty_id"),
        ("loyalty_card", "loyalty_id"),
        ("Loyalty-Card", "loyalty_id"),
        ("email", "email"),
        ("Email Address", "email"),
        ("phone", "phone"),
        ("mobile_number", "phone"),
        ("plan", None),
        ("member_no", None),
    ],
)
def test_segments_conventional_traits_are_mapped_by_default(name: str, kind: str | None) -> None:
    assert IdentifierTraits().kind(name) == kind


def test_a_source_adds_names_and_repoints_defaults() -> None:
    traits = IdentifierTraits({"member_no": "loyalty_id", "crm_id": "customer_id"})
    assert traits.kind("memberNo") == "loyalty_id"
    assert traits.kind("crm_id") == "customer_id"
    assert traits.kind("loyaltyId") == "loyalty_id"  # the defaults stay
    assert IdentifierTraits({"work_email": "email"}).kind("work_email") == "email"
    assert IdentifierTraits({"loyalty_card": "customer_id"}).kind("loyalty_card") == "customer_id"
