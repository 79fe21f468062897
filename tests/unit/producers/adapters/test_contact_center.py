"""producers.adapters.contact_center: contact records become call-center touchpoints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producers.adapters.contact_center import derive_contact
from producers.adapters.errors import RecordError, UnidentifiedError
from producers.adapters.records import Record
from schemas.touchpoint import Channel, Touchpoint
from tests.unit.producers.adapters.builders import HASHER, contact, contact_mapping

MAPPING = contact_mapping()


def derive(record: Record) -> list[Touchpoint]:
    return derive_contact(record, MAPPING, HASHER)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2025, 3, 3, hour, minute, second, tzinfo=UTC)


def test_an_answered_contact() -> None:
    events = derive(contact())
    assert [e.event_type for e in events] == ["contact_queued", "contact_answered", "contact_ended"]
    assert [e.occurred_at for e in events] == [at(9, 0), at(9, 2), at(9, 12)]
    for event in events:
        assert event.channel is Channel.CALL_CENTER and event.source == "cc-test"
        assert event.touchpoint == "queue:billing" and event.session_id == "C-1"
        assert event.properties["contact_id"] == "C-1"
    answered, ended = events[1].properties, events[2].properties
    assert answered["wait_seconds"] == 120.0 and answered["agent"] == "A7"
    assert ended == {
        "contact_id": "C-1",
        "queue": "billing",
        "wait_seconds": 120.0,
        "handle_seconds": 600.0,
        "answered": True,
        "agent": "A7",
        "disposition": "resolved",
        "disposition_code": "RES",
        "transfers": 0,
    }


def test_an_abandoned_contact() -> None:
    events = derive(contact(answered="", code="ABN", agent=""))
    assert [e.event_type for e in events] == [
        "contact_queued",
        "contact_abandoned",
        "contact_ended",
    ]
    abandoned, ended = events[1], events[2]
    assert abandoned.occurred_at == ended.occurred_at == at(9, 12)
    assert abandoned.properties["wait_seconds"] == 720.0
    assert ended.properties["answered"] is False and ended.properties["disposition"] == "abandoned"
    assert "handle_seconds" not in ended.properties and "agent" not in ended.properties


def blocks(events: list[Touchpoint]) -> list[dict[str, object]]:
    """The typed `call_center` block of each event, as it goes on the wire."""
    return [e.model_dump(mode="json")["call_center"] for e in events]


def test_events_carry_the_typed_block_with_the_outcome_on_the_last() -> None:
    events = derive(contact())
    assert {e.schema_version for e in events} == {2}
    ids = {"contact_id": "C-1", "queue": "billing"}
    assert blocks(events) == [
        ids,
        {**ids, "agent": "A7", "wait_seconds": 120.0},
        {
            **ids,
            "agent": "A7",
            "wait_seconds": 120.0,
            "handle_seconds": 600.0,
            "transfers": 0,
            "disposition": "resolved",
            "abandoned": False,
        },
    ]


def test_an_abandoned_contact_states_it_once_typed() -> None:
    queued, gave_up, ended = blocks(derive(contact(answered="", code="ABN", agent="")))
    assert gave_up == {"contact_id": "C-1", "queue": "billing", "wait_seconds": 720.0}
    assert ended["abandoned"] is True and ended["disposition"] == "abandoned"
    assert "handle_seconds" not in ended and "agent" not in ended and "abandoned" not in queued


def test_the_transfer_count_is_typed_on_the_end_only() -> None:
    found = blocks(derive(contact(transfers="2")))
    assert [b.get("transfers") for b in found] == [None, None, None, None, 2]


def test_transfers_are_one_event_each_in_order_between_answer_and_end() -> None:
    events = derive(contact(transfers="2"))
    types = [e.event_type for e in events]
    assert types == [
        "contact_queued",
        "contact_answered",
        "contact_transferred",
        "contact_transferred",
        "contact_ended",
    ]
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    first, second = events[2], events[3]
    assert (first.occurred_at, second.occurred_at) == (at(9, 5, 20), at(9, 8, 40))
    assert first.properties["transfer"] == 1 and second.properties["transfer"] == 2
    assert first.properties["time_estimated"] is True and first.properties["transfers"] == 2
    assert len({e.event_id for e in events}) == 5


def test_exported_wait_and_handle_seconds_win_over_the_timestamps() -> None:
    ended = derive(contact(wait="95", handle="0"))[-1].properties
    assert (ended["wait_seconds"], ended["handle_seconds"]) == (95.0, 0.0)


def test_identity_is_hashed_never_raw() -> None:
    events = derive(contact(email=" Anna@Example.com ", customer="CUST-1"))
    identity = events[0].identity
    assert identity.phone_hash == HASHER.phone("+44 20 7946 0958")
    assert identity.email_hash == HASHER.email("anna@example.com")
    assert identity.customer_id == "CUST-1"
    payload = "".join(e.model_dump_json() for e in events)
    assert "7946" not in payload and "@" not in payload


@pytest.mark.parametrize("phone", ["anonymous", "private", "+1", "", "12345"])
def test_withheld_numbers_are_no_identifier(phone: str) -> None:
    assert derive(contact(phone=phone, customer="CUST-9"))[0].identity.phone_hash is None
    with pytest.raises(UnidentifiedError):
        derive(contact(phone=phone))


def test_an_e_mail_without_a_domain_is_no_identifier() -> None:
    with pytest.raises(UnidentifiedError):
        derive(contact(phone="", email="n/a"))


def test_unmapped_codes_use_the_fallback() -> None:
    mapping = contact_mapping(values={"disposition": {"RES": "resolved", "*": "other"}})
    ended = derive_contact(contact(code="ZZ"), mapping, HASHER)[-1]
    assert ended.properties["disposition"] == "other"


def test_without_optional_columns() -> None:
    columns = {"contact_id": "id", "queued_at": "queued", "ended_at": "ended", "phone": "phone"}
    mapping = contact_mapping(columns=columns, values={})
    events = derive_contact(contact(), mapping, HASHER)
    assert [e.event_type for e in events] == [
        "contact_queued",
        "contact_abandoned",
        "contact_ended",
    ]
    assert events[0].touchpoint is None


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"id": ""}, r"^contact_id \(column 'id'\): empty$"),
        ({"queued": ""}, r"^queued_at \(column 'queued'\): empty$"),
        ({"ended": "soon"}, r"^ended_at \(column 'ended'\): cannot read the value as iso$"),
        ({"answered": "2025-03-03T08:59:00+00:00"}, "^answered_at is before queued_at$"),
        ({"ended": "2025-03-03T09:01:00+00:00"}, "^ended_at is before answered_at$"),
        (
            {"answered": "", "ended": "2025-03-03T08:00:00+00:00"},
            "^ended_at is before queued_at$",
        ),
        ({"code": "XYZ"}, r"^disposition: the value is not in \[values.disposition\]$"),
        ({"code": "ABN"}, "^the disposition means abandoned, but the contact was answered$"),
        ({"transfers": "two"}, r"not a count \(text\)$"),
        ({"transfers": "51"}, "^transfers: 51 is more than 50$"),
        ({"wait": "-3"}, "^wait_seconds: -3.0 is negative$"),
        ({"handle": "ten"}, "not a number$"),
        ({"queue": "q" * 200}, "^contact_queued: touchpoint: String should have at most 128"),
        (
            {"wait": "2592001"},
            "^contact_answered: call_center.wait_seconds: Input should be less than or equal to",
        ),
        ({"phone": "", "customer": ""}, "^no usable identifier"),
    ],
)
def test_bad_records_say_why(values: dict[str, str], reason: str) -> None:
    with pytest.raises(RecordError, match=reason) as raised:
        derive(contact(**values))
    # A record error reaches dead letters and logs: it names the column, never the text.
    assert not any(len(v) > 2 and v in str(raised.value) for v in values.values() if v)
