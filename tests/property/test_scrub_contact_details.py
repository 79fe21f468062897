"""No phone number or e-mail address in free text reaches an event raw, whichever way the text
enters: the detector itself, the collector, the file adapters and the ingest stage's pass.

The contact details come from a generator that is not the detector's own: Faker's phone and
e-mail providers of many locales (plus Unicode addresses built from its names, and the
formats people write: national US and UK, 00-international, toll-free). Bare digit strings
without a trunk `0` or a `+` are left out on purpose: the detector reads them as ids
(`producers/contact_details.py`); how many of those it leaves is the miss rate
`tests/bench/scrub_rates.py` reports.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from faker import Faker
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.adapters.contact_center import derive_contact
from producers.adapters.errors import RecordError
from producers.collector.segment import to_touchpoint
from stream_processors.ingest.core.admission import Ingest
from tests.unit.producers.adapters.builders import HASHER, contact, contact_mapping
from tests.unit.producers.collector.builders import SCRUBBER, received

LOCALES = (
    "en_US",
    "en_GB",
    "de_DE",
    "fr_FR",
    "es_ES",
    "it_IT",
    "nl_NL",
    "en_AU",
    "en_CA",
    "pt_BR",
    "en_IN",
    "ja_JP",
    "pl_PL",
    "sv_SE",
)
LISTED_FORMATS = ("555 123 4567", "0044 20 7946 0958", "07700 900123", "1-800-555-0199")
FAKERS = {locale: Faker(locale) for locale in LOCALES}
_DIALLED = re.compile(r"[+0]|0[1-9]")


def _phone(locale: str, seed: int) -> str:
    faker = FAKERS[locale]
    faker.seed_instance(seed)
    return str(faker.phone_number())


def _email(locale: str, seed: int, unicode: bool) -> str:
    faker = FAKERS[locale]
    faker.seed_instance(seed)
    if not unicode:
        return str(faker.email())
    # Faker's own addresses are ASCII; people's names are not.
    return f"{faker.first_name().lower()}.{faker.last_name().lower()}@exämple.{faker.tld()}"


def _written_as_a_phone(phone: str) -> bool:
    """Not a bare digit string, or one dialled with a trunk 0 or a + (see the docstring)."""
    return not phone.isdigit() or (phone.startswith("0") and not phone.startswith("00"))


phones = st.one_of(
    st.sampled_from(LISTED_FORMATS),
    st.builds(_phone, st.sampled_from(LOCALES), st.integers(0, 2**32)).filter(_written_as_a_phone),
)
emails = st.one_of(
    st.just("jané@exämple.com"),
    st.builds(_email, st.sampled_from(LOCALES), st.integers(0, 2**32), st.booleans()),
)
words = st.lists(
    st.sampled_from(["call", "me", "on", "or", "write", "to", "thanks!", "re:", "(urgent)"]),
    max_size=4,
).map(" ".join)


@st.composite
def free_texts(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A text holding one to three contact details between words, and those details."""
    details = draw(st.lists(st.one_of(phones, emails), min_size=1, max_size=3))
    parts = [draw(words)]
    for detail in details:
        parts += [detail, draw(words)]
    return " ".join(p for p in parts if p), details


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def assert_none_raw(out: str, details: list[str]) -> None:
    flat = _digits(out)
    for detail in details:
        assert detail not in out, (detail, out)
        if "@" not in detail:
            assert _digits(detail)[:10] not in flat, (detail, out)


@settings(max_examples=300, deadline=None)
@given(free_texts())
def test_the_detector_leaves_no_contact_detail(case: tuple[str, list[str]]) -> None:
    text, details = case
    assert_none_raw(HASHER.text(text), details)


@settings(max_examples=100, deadline=None)
@given(free_texts(), free_texts())
def test_the_collector_leaves_none_in_any_text_of_a_call(
    note: tuple[str, list[str]], name: tuple[str, list[str]]
) -> None:
    msg: dict[str, Any] = {
        "type": "track",
        "event": "Callback Requested",
        "userId": "u-1",
        "messageId": "m-1",
        "properties": {"note": note[0], name[0]: 1, "nested": {"text": note[0]}},
        "context": {"page": {"path": "/help", "title": name[0]}},
    }
    event = to_touchpoint(msg, "track", received(), SCRUBBER).event
    assert_none_raw(event.model_dump_json(), note[1] + name[1])


@settings(max_examples=100, deadline=None)
@given(free_texts(), free_texts())
def test_the_adapters_leave_none_in_any_text_of_a_record(
    agent: tuple[str, list[str]], queue: tuple[str, list[str]]
) -> None:
    record = contact(agent=agent[0][:200], queue=queue[0][:200])
    try:
        out = "".join(
            e.model_dump_json() for e in derive_contact(record, contact_mapping(), HASHER)
        )
    except RecordError as exc:  # hashes can make a text too long: refused, with the reason
        out = str(exc)
    assert_none_raw(out, agent[1] + queue[1])


@settings(max_examples=100, deadline=None)
@given(free_texts(), free_texts())
def test_the_ingest_stage_pass_leaves_none_in_any_text_of_an_event(
    note: tuple[str, list[str]], touchpoint: tuple[str, list[str]]
) -> None:
    raw: dict[str, Any] = {
        "event_id": "4c3a5f9e-1d2b-4e6f-8a7b-9c0d1e2f3a4b",
        "channel": "web",
        "source": "some-producer",
        "event_type": "note_left",
        "occurred_at": "2025-03-03T09:00:00.123456+00:00",
        "identity": {"customer_id": "c-1"},
        "touchpoint": touchpoint[0][:200],
        "properties": {"note": note[0][:1000], "when": "2025-03-03 09:00:00"},
    }
    now = datetime(2025, 3, 3, 10, tzinfo=UTC)
    result = Ingest({}, timedelta(days=1), timedelta(minutes=5)).process(
        [HASHER.document(raw)], now
    )
    out = b"".join(result.fragments + [r.raw for r in result.rejected]).decode()
    assert_none_raw(out, note[1] + touchpoint[1])
