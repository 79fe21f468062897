"""`journeys identity show`: who an identifier or person id is, from the map and audit rows."""

from __future__ import annotations

from typing import Any

from deploy.commands.identity import describe, render
from stream_processors.identity.core.records import person_id

CUSTOMER = "customer_id:c-1"
ANON = "anonymous_id:a-1"
PHONE = "phone_hash:p-1"
OTHER = "customer_id:c-2"


def map_row(key: str, person: str, remapped: bool) -> dict[str, Any]:
    return {"identifier": key, "person_id": person, "remapped": remapped, "version": 1}


def audit_row(
    kind: str, ids: list[str], person: str, old: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "rule": extra.get("rule", "link"),
        "identifiers": ids,
        "person_id": person,
        "old_person_ids": old,
        "event_id": extra.get("event_id", "e1"),
        "event_time": extra.get("at", "2025-03-01T09:00:00+00:00"),
        "version": 1,
        "detail": extra.get("detail", ""),
        "retracted": extra.get("retracted", False),
    }


P1 = person_id(CUSTOMER)
MAP = [map_row(ANON, P1, True), map_row(PHONE, P1, True)]
AUDIT = [
    audit_row("merge", [CUSTOMER, ANON], P1, [P1, person_id(ANON)]),
    audit_row("merge", [CUSTOMER, PHONE], P1, [P1, person_id(PHONE)], event_id="e2"),
    audit_row(
        "refusal",
        [OTHER, ANON],
        person_id(OTHER),
        [],
        rule="customer_id_conflict",
        detail="customer_id:c-1 and customer_id:c-2 are different customers",
        event_id="e3",
        at="2025-03-01T10:00:00+00:00",
    ),
]


def test_any_identifier_of_a_person_shows_the_whole_person() -> None:
    for query in (CUSTOMER, ANON, PHONE, P1):
        view = describe(query, MAP, AUDIT)
        assert view.person_id == P1
        assert view.identifiers == sorted([CUSTOMER, ANON, PHONE])
        assert [r["event_id"] for r in view.records] == ["e1", "e2", "e3"]


def test_a_split_takes_the_identifier_back_to_its_own_person() -> None:
    split = [*MAP, map_row(PHONE, person_id(PHONE), False)]
    view = describe(PHONE, split, AUDIT)
    assert view.person_id == person_id(PHONE)
    assert view.identifiers == [PHONE]
    assert describe(CUSTOMER, split, AUDIT).identifiers == sorted([CUSTOMER, ANON])


def test_the_refused_customer_is_a_person_of_its_own_with_the_refusal() -> None:
    view = describe(OTHER, MAP, AUDIT)
    assert view.person_id == person_id(OTHER)
    assert view.identifiers == [OTHER]
    text = render(view)
    assert "refusal (customer_id_conflict)" in text and "different customers" in text


def test_an_unknown_identifier_says_so() -> None:
    text = render(describe("customer_id:nobody", [], []))
    assert person_id("customer_id:nobody") in text
    assert "merges, moves and refusals (0)" in text
