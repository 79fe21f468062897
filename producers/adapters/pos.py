"""Point-of-sale records become store touchpoints (pure: no Kafka).

One record (a till transaction) yields one `purchase` or `return` at `store:<id>:till:<id>`,
with the amount (always positive: the event type says which way the money went), currency
and number of items. POS exports record transactions, not visits or loyalty scans on their
own, so no `store_visit` is derived from them. The same facts are also in the typed `store`
block (schema_version 2), where `is_return` says which way the money went.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from producers.adapters.errors import RecordError
from producers.adapters.mapping import PosMapping, SaleType, map_code
from producers.adapters.records import Cells, Record
from producers.adapters.touchpoints import RecordEvents, hashed_identity
from producers.pii import PiiHasher
from schemas.touchpoint import Channel, Touchpoint

SALE_TYPES: tuple[SaleType, ...] = get_args(SaleType)


@dataclass(frozen=True, slots=True)
class Sale:
    """One till transaction as read from its record."""

    transaction_id: str
    store_id: str
    till: str | None
    occurred_at: datetime
    type: SaleType
    amount: float
    currency: str
    items: int | None

    @property
    def touchpoint(self) -> str:
        return f"store:{self.store_id}:till:{self.till}" if self.till else f"store:{self.store_id}"

    @property
    def record_id(self) -> str:
        # Many tills number transactions on their own, so the id is only unique together
        # with its store and till; a collision would drop a real sale as a duplicate.
        return f"{self.store_id}/{self.till or ''}/{self.transaction_id}"


def derive_sale(record: Record, mapping: PosMapping, hasher: PiiHasher) -> list[Touchpoint]:
    """The touchpoint of one POS record; raises `RecordError` with the reason."""
    cells = Cells(record, mapping.file, mapping.time)
    sale = read_sale(cells, mapping)
    columns = mapping.columns
    identity = hashed_identity(
        hasher,
        customer_id=cells.text("customer_id", columns.customer_id),
        loyalty_id=cells.text("loyalty_id", columns.loyalty_id),
        email=cells.text("email", columns.email),
        phone=cells.text("phone", columns.phone),
    )
    events = RecordEvents(
        channel=Channel.STORE,
        source=mapping.source,
        record_id=sale.record_id,
        identity=identity,
        scrub=hasher.text,
        touchpoint=sale.touchpoint,
        common={"transaction_id": sale.transaction_id, "store_id": sale.store_id},
    )
    properties = {
        "till": sale.till,
        "amount": sale.amount,
        "currency": sale.currency,
        "items": sale.items,
    }
    detail = {
        "store_id": sale.store_id,
        "transaction_id": sale.transaction_id,
        "is_return": sale.type == "return",
        **properties,
    }
    return [events.event(sale.type, sale.occurred_at, properties, detail=detail)]


def read_sale(cells: Cells, mapping: PosMapping) -> Sale:
    """The typed sale of a record."""
    columns = mapping.columns
    amount = cells.number("amount", columns.amount)
    if amount is None:
        raise RecordError(f"amount (column {columns.amount!r}): empty")
    sale_type = _sale_type(cells, mapping, amount)
    if sale_type == "purchase" and amount < 0:
        raise RecordError(f"amount: {amount} is negative on a purchase")
    return Sale(
        transaction_id=cells.required_text("transaction_id", columns.transaction_id),
        store_id=cells.required_text("store_id", columns.store_id),
        till=cells.text("till", columns.till),
        occurred_at=cells.required_time("timestamp", columns.timestamp),
        type=sale_type,
        amount=abs(amount),
        currency=_currency(cells, mapping),
        items=cells.count("items", columns.items),
    )


def _sale_type(cells: Cells, mapping: PosMapping, amount: float) -> SaleType:
    """From the type column through `[values.type]`; without a type column, a negative
    amount is a return."""
    column = mapping.columns.type
    if column is None:
        return "return" if amount < 0 else "purchase"
    code = cells.required_text("type", column)
    mapped = map_code("type", code, mapping.values.type)
    for known in SALE_TYPES:
        if mapped == known:
            return known
    raise RecordError("type: neither purchase nor return; map the value in [values.type]")


def _currency(cells: Cells, mapping: PosMapping) -> str:
    given = cells.text("currency", mapping.columns.currency)
    currency = given.upper() if given else mapping.default_currency
    if currency is None:
        raise RecordError("currency: empty, and the mapping sets no default_currency")
    if len(currency) != 3 or not (currency.isascii() and currency.isalpha()):
        raise RecordError("currency: not an ISO 4217 code")
    return currency
