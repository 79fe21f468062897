"""Invariants of the offline adapters: any record either becomes touchpoints or is refused
with a reason (never a crash), contact events stay in time order, and ids are stable."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.adapters.contact_center import derive_contact
from producers.adapters.errors import RecordError
from producers.adapters.pos import derive_sale
from producers.adapters.records import Record
from schemas.touchpoint import Touchpoint
from tests.unit.producers.adapters.builders import (
    HASHER,
    contact,
    contact_mapping,
    pos_mapping,
    sale,
)

CONTACT = contact_mapping(values={"disposition": {"RES": "resolved", "ABN": "abandoned"}})
POS = pos_mapping()

times = st.sampled_from(
    ["", "2025-03-03T09:00:00+00:00", "2025-03-03T09:02:00+00:00", "2025-03-03T09:12:00Z", "x"]
)
cells = st.one_of(
    st.none(), st.text(max_size=12), st.integers(-5, 60), st.floats(allow_nan=True), times
)
contact_cells = st.fixed_dictionaries(
    {},
    optional={
        "queued": times,
        "answered": times,
        "ended": times,
        "code": st.sampled_from(["RES", "ABN", "XYZ", ""]),
        "transfers": cells,
        "wait": cells,
        "handle": cells,
        "phone": cells,
        "email": cells,
        "customer": cells,
        "queue": cells,
    },
)
sale_cells = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["S", "R", "VOID", ""]),
        "total": cells,
        "currency": cells,
        "lines": st.one_of(cells, st.lists(st.integers(), max_size=3)),
        "loyalty": cells,
        "till": cells,
        "ts": times,
    },
)


def outcome(derive: Any, record: Record) -> list[Touchpoint] | None:
    try:
        return list(derive(record))
    except RecordError as exc:
        assert str(exc)  # a refusal always says why
        return None


@settings(max_examples=300, deadline=None)
@given(values=contact_cells)
def test_contacts_become_ordered_touchpoints_or_a_reason(values: dict[str, Any]) -> None:
    record = contact(**values)
    events = outcome(lambda r: derive_contact(r, CONTACT, HASHER), record)
    if events is None:
        return
    times_ = [e.occurred_at for e in events]
    assert times_ == sorted(times_)
    assert events[0].event_type == "contact_queued" and events[-1].event_type == "contact_ended"
    answered = any(e.event_type == "contact_answered" for e in events)
    abandoned = any(e.event_type == "contact_abandoned" for e in events)
    assert answered != abandoned
    again = derive_contact(record, CONTACT, HASHER)
    assert [e.event_id for e in again] == [e.event_id for e in events]
    assert len({e.event_id for e in events}) == len(events)


@settings(max_examples=300, deadline=None)
@given(values=sale_cells)
def test_sales_become_one_touchpoint_or_a_reason(values: dict[str, Any]) -> None:
    events = outcome(lambda r: derive_sale(r, POS, HASHER), sale(**values))
    if events is None:
        return
    (event,) = events
    assert event.event_type in ("purchase", "return")
    amount = event.properties["amount"]
    assert isinstance(amount, float) and amount >= 0
