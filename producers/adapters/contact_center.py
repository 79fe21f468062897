"""Contact-center contact records become call-center touchpoints (pure: no Kafka).

One record (a call, chat or e-mail contact as the platform exports it) yields, in time order:
`contact_queued`; `contact_answered` if an agent answered; one `contact_transferred` per
transfer; `contact_abandoned` if nobody ever answered; `contact_ended`. Wait and handle times
come from the export when it has them, else from the timestamps. The repeat-contact flag needs
the customer's history, so later stages set it.

Each event carries its facts twice: in the documented properties, and in the typed
`call_center` block (schema_version 2). The contact's outcome (`abandoned`, `transfers`,
`disposition`, handle time) is typed only on `contact_ended`, so its signals count once per
contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from producers.adapters.errors import RecordError
from producers.adapters.mapping import ContactCenterMapping, map_code
from producers.adapters.records import Cells, Record
from producers.adapters.touchpoints import RecordEvents, hashed_identity
from producers.pii import PiiHasher
from schemas.touchpoint import Channel, PropertyValue, Touchpoint

ABANDONED = "abandoned"
# A corrupt transfer count must not fan one record out into thousands of events.
MAX_TRANSFERS = 50


@dataclass(frozen=True, slots=True)
class Contact:
    """One contact as read from its record, times in UTC, seconds as floats."""

    contact_id: str
    queued_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    queue: str | None
    agent: str | None
    disposition_code: str | None
    disposition: str | None
    transfers: int | None
    wait_seconds: float
    handle_seconds: float | None


def derive_contact(
    record: Record, mapping: ContactCenterMapping, hasher: PiiHasher
) -> list[Touchpoint]:
    """The touchpoints of one contact record; raises `RecordError` with the reason."""
    cells = Cells(record, mapping.file, mapping.time)
    contact = read_contact(cells, mapping)
    columns = mapping.columns
    identity = hashed_identity(
        hasher,
        customer_id=cells.text("customer_id", columns.customer_id),
        email=cells.text("email", columns.email),
        phone=cells.text("phone", columns.phone),
    )
    events = RecordEvents(
        channel=Channel.CALL_CENTER,
        source=mapping.source,
        record_id=contact.contact_id,
        identity=identity,
        scrub=hasher.text,
        touchpoint=f"queue:{contact.queue}" if contact.queue else None,
        session_id=contact.contact_id,
        common={"contact_id": contact.contact_id, "queue": contact.queue},
    )
    return contact_events(contact, events)


def read_contact(cells: Cells, mapping: ContactCenterMapping) -> Contact:
    """The typed contact of a record, with its times checked for order."""
    columns = mapping.columns
    queued = cells.required_time("queued_at", columns.queued_at)
    answered = cells.time("answered_at", columns.answered_at)
    ended = cells.required_time("ended_at", columns.ended_at)
    _check_order(queued, answered, ended)
    code = cells.text("disposition", columns.disposition)
    disposition = map_code("disposition", code, mapping.values.disposition)
    if disposition == ABANDONED and answered is not None:
        raise RecordError("the disposition means abandoned, but the contact was answered")
    return Contact(
        contact_id=cells.required_text("contact_id", columns.contact_id),
        queued_at=queued,
        answered_at=answered,
        ended_at=ended,
        queue=cells.text("queue", columns.queue),
        agent=cells.text("agent", columns.agent),
        disposition_code=code,
        disposition=disposition,
        transfers=_transfers(cells, columns.transfers),
        wait_seconds=_wait(cells, columns.wait_seconds, queued, answered or ended),
        handle_seconds=_handle(cells, columns.handle_seconds, answered, ended),
    )


def contact_events(contact: Contact, events: RecordEvents) -> list[Touchpoint]:
    """The contact's touchpoints in time order."""
    out = [events.event("contact_queued", contact.queued_at, {}, detail=_detail(contact))]
    if contact.answered_at is not None:
        answered = {"wait_seconds": contact.wait_seconds, "agent": contact.agent}
        detail = _detail(contact, agent=contact.agent, wait_seconds=contact.wait_seconds)
        out.append(events.event("contact_answered", contact.answered_at, answered, detail=detail))
    out.extend(_transfer_events(contact, events))
    if contact.answered_at is None:
        abandoned = {"wait_seconds": contact.wait_seconds}
        detail = _detail(contact, wait_seconds=contact.wait_seconds)
        out.append(events.event("contact_abandoned", contact.ended_at, abandoned, detail=detail))
    ended = {
        "wait_seconds": contact.wait_seconds,
        "handle_seconds": contact.handle_seconds,
        "answered": contact.answered_at is not None,
        "agent": contact.agent,
        "disposition": contact.disposition,
        "disposition_code": contact.disposition_code,
        "transfers": contact.transfers,
    }
    outcome = _detail(
        contact,
        agent=contact.agent,
        wait_seconds=contact.wait_seconds,
        handle_seconds=contact.handle_seconds,
        transfers=contact.transfers,
        disposition=contact.disposition,
        abandoned=contact.answered_at is None,
    )
    out.append(events.event("contact_ended", contact.ended_at, ended, detail=outcome))
    return out


def _detail(contact: Contact, **facts: PropertyValue) -> dict[str, PropertyValue]:
    """The `call_center` block of one of the contact's events: its id and queue, plus
    `facts`."""
    return {"contact_id": contact.contact_id, "queue": contact.queue, **facts}


def _transfer_events(contact: Contact, events: RecordEvents) -> list[Touchpoint]:
    """One event per transfer. Exports give a count, not times, so the transfers are spread
    evenly between answer (or queue) and end: the order stays true, the times are marked
    as estimated. The count is typed on `contact_ended` only: one transfer signal a contact."""
    count = contact.transfers or 0
    start = contact.answered_at or contact.queued_at
    step = (contact.ended_at - start) / (count + 1)
    detail = _detail(contact, agent=contact.agent)
    return [
        events.event(
            "contact_transferred",
            start + step * n,
            {"transfer": n, "transfers": count, "agent": contact.agent, "time_estimated": True},
            key=f"contact_transferred:{n}",
            detail=detail,
        )
        for n in range(1, count + 1)
    ]


def _check_order(queued: datetime, answered: datetime | None, ended: datetime) -> None:
    if answered is not None and answered < queued:
        raise RecordError("answered_at is before queued_at")
    if ended < (answered or queued):
        raise RecordError(f"ended_at is before {'answered_at' if answered else 'queued_at'}")


def _transfers(cells: Cells, column: str | None) -> int | None:
    count = cells.count("transfers", column)
    if count is not None and count > MAX_TRANSFERS:
        raise RecordError(f"transfers: {count} is more than {MAX_TRANSFERS}")
    return count


def _seconds(cells: Cells, key: str, column: str | None) -> float | None:
    value = cells.number(key, column)
    if value is not None and value < 0:
        raise RecordError(f"{key}: {value} is negative")
    return value


def _wait(cells: Cells, column: str | None, queued: datetime, left_queue: datetime) -> float:
    given = _seconds(cells, "wait_seconds", column)
    return given if given is not None else _span(queued, left_queue)


def _handle(
    cells: Cells, column: str | None, answered: datetime | None, ended: datetime
) -> float | None:
    if answered is None:
        return None  # nobody handled an abandoned contact
    given = _seconds(cells, "handle_seconds", column)
    return given if given is not None else _span(answered, ended)


def _span(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)
