"""producers.adapters.pos: point-of-sale records become store touchpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from producers.adapters.errors import RecordError, UnidentifiedError
from producers.adapters.pos import derive_sale
from producers.adapters.records import Record
from schemas.touchpoint import Channel, Identity, Touchpoint
from tests.unit.producers.adapters.builders import HASHER, POS_COLUMNS, pos_mapping, sale

MAPPING = pos_mapping()


def derive(record: Record) -> Touchpoint:
    events = derive_sale(record, MAPPING, HASHER)
    assert len(events) == 1
    return events[0]


def test_a_purchase() -> None:
    event = derive(sale())
    assert event.event_type == "purchase" and event.channel is Channel.STORE
    assert event.source == "pos-test"
    assert event.occurred_at == datetime(2025, 3, 3, 9, 15, tzinfo=UTC)
    assert event.touchpoint == "store:042:till:03"
    assert event.identity == Identity(loyalty_id="L0001")
    assert event.properties == {
        "transaction_id": "000123",
        "store_id": "042",
        "till": "03",
        "amount": 59.9,
        "currency": "EUR",
        "items": 2,
    }
    assert event.schema_version == 2
    assert event.model_dump(mode="json")["store"] == {
        **event.properties,
        "is_return": False,
    }


@pytest.mark.parametrize(
    ("values", "amount"),
    [({"kind": "R", "total": 19.99}, 19.99), ({"kind": "R", "total": "-19.99"}, 19.99)],
)
def test_a_return_has_a_positive_amount(values: dict[str, Any], amount: float) -> None:
    event = derive(sale(**values))
    assert event.event_type == "return" and event.properties["amount"] == amount
    assert event.store is not None
    assert event.store.is_return is True and event.store.amount == amount


def test_without_a_type_column_the_sign_decides() -> None:
    columns = {k: v for k, v in POS_COLUMNS.items() if k != "type"}
    mapping = pos_mapping(columns=columns)
    assert derive_sale(sale(total=-5), mapping, HASHER)[0].event_type == "return"
    assert derive_sale(sale(total=5), mapping, HASHER)[0].event_type == "purchase"


def test_codes_can_be_the_type_names_themselves() -> None:
    mapping = pos_mapping(values={})
    assert derive_sale(sale(kind="return"), mapping, HASHER)[0].event_type == "return"


def test_defaults_and_optional_cells() -> None:
    event = derive(sale(till="", currency=None, lines=3))
    assert event.touchpoint == "store:042"
    assert event.properties["currency"] == "EUR" and event.properties["items"] == 3
    assert "till" not in event.properties


def test_identity_hashes_contact_details() -> None:
    event = derive(sale(loyalty="", customer="CUST-1", email="a@example.com", phone="07700 900123"))
    assert event.identity.customer_id == "CUST-1" and event.identity.loyalty_id is None
    assert event.identity.email_hash == HASHER.email("a@example.com")
    assert event.identity.phone_hash == HASHER.phone("07700 900123")
    assert "example.com" not in event.model_dump_json()


def test_an_anonymous_cash_sale_is_unidentified() -> None:
    with pytest.raises(UnidentifiedError):
        derive(sale(loyalty=None))


def test_the_record_id_includes_store_and_till() -> None:
    ids = {derive(sale(store=s, till=t)).event_id for s in ("042", "017") for t in ("01", "02")}
    assert len(ids) == 4


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"total": None}, r"^amount \(column 'total'\): empty$"),
        ({"total": "12,5x"}, r"^amount \(column 'total'\): not a number$"),
        ({"total": -5}, "^amount: -5.0 is negative on a purchase$"),
        ({"kind": "VOID"}, r"^type: the value is not in \[values.type\]$"),
        ({"kind": ""}, r"^type \(column 'kind'\): empty$"),
        ({"ts": None}, r"^timestamp \(column 'ts'\): empty$"),
        ({"txn": ""}, r"^transaction_id \(column 'txn'\): empty$"),
        ({"currency": "euro"}, "^currency: not an ISO 4217 code$"),
        ({"lines": "many"}, r"not a count \(text\)$"),
        ({"total": 2e12}, "^purchase: store.amount: Input should be less than or equal to"),
    ],
)
def test_bad_records_say_why(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        derive(sale(**values))


def test_an_unknown_type_without_a_value_map() -> None:
    with pytest.raises(RecordError, match="neither purchase nor return"):
        derive_sale(sale(kind="SALE"), pos_mapping(values={}), HASHER)


def test_an_empty_currency_without_a_default() -> None:
    mapping = pos_mapping(default_currency=None)
    with pytest.raises(RecordError, match=r"^currency: empty, and the mapping sets no default"):
        derive_sale(sale(currency=""), mapping, HASHER)
