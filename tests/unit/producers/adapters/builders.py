"""Mappings and records for the offline adapters' unit and property tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from producers.adapters.mapping import ContactCenterMapping, PosMapping
from producers.adapters.records import Record
from producers.pii import PiiHasher
from schemas.settings import PiiSettings

ROOT = Path(__file__).resolve().parents[4]
MAPPINGS = ROOT / "deploy" / "mappings"
EXAMPLES = ROOT / "deploy" / "examples"
HASHER = PiiHasher(PiiSettings())

CONTACT_COLUMNS = {
    "contact_id": "id",
    "queued_at": "queued",
    "answered_at": "answered",
    "ended_at": "ended",
    "agent": "agent",
    "queue": "queue",
    "disposition": "code",
    "transfers": "transfers",
    "phone": "phone",
    "email": "email",
    "customer_id": "customer",
    "wait_seconds": "wait",
    "handle_seconds": "handle",
}
POS_COLUMNS = {
    "transaction_id": "txn",
    "store_id": "store",
    "till": "till",
    "timestamp": "ts",
    "type": "kind",
    "amount": "total",
    "currency": "currency",
    "items": "lines",
    "loyalty_id": "loyalty",
    "customer_id": "customer",
    "email": "email",
    "phone": "phone",
}


def contact_mapping(**overrides: Any) -> ContactCenterMapping:
    doc: dict[str, Any] = {
        "channel": "call_center",
        "source": "cc-test",
        "columns": CONTACT_COLUMNS,
        "values": {"disposition": {"RES": "resolved", "ABN": "abandoned"}},
    }
    return ContactCenterMapping.model_validate({**doc, **overrides})


def pos_mapping(**overrides: Any) -> PosMapping:
    doc: dict[str, Any] = {
        "channel": "store",
        "source": "pos-test",
        "default_currency": "EUR",
        "columns": POS_COLUMNS,
        "values": {"type": {"S": "purchase", "R": "return"}},
    }
    return PosMapping.model_validate({**doc, **overrides})


def contact(line: int = 2, /, **values: Any) -> Record:
    """An answered, resolved call record (ISO times, UTC) with `values` applied."""
    row: dict[str, Any] = {
        "id": "C-1",
        "queued": "2025-03-03T09:00:00+00:00",
        "answered": "2025-03-03T09:02:00+00:00",
        "ended": "2025-03-03T09:12:00+00:00",
        "agent": "A7",
        "queue": "billing",
        "code": "RES",
        "transfers": "0",
        "phone": "+44 20 7946 0958",
        "email": "",
        "customer": "",
        "wait": "",
        "handle": "",
    }
    return Record(line, {**row, **values})


def sale(line: int = 2, **values: Any) -> Record:
    """A purchase of two items with a loyalty card, with `values` applied."""
    row: dict[str, Any] = {
        "txn": "000123",
        "store": "042",
        "till": "03",
        "ts": "2025-03-03T10:15:00+01:00",
        "kind": "S",
        "total": 59.9,
        "currency": "eur",
        "lines": [{"sku": "A"}, {"sku": "B"}],
        "loyalty": "L0001",
    }
    return Record(line, {**row, **values})
