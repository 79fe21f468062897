"""`journeys ingest call-center|store` on the shipped example files, against the real broker:
the expected touchpoints land on `raw`, contact details only as hashes, and re-ingesting a file
publishes the same event ids."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from producers.adapters.runner import Kind, run_ingest
from producers.pii import PiiHasher, normalize_phone
from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics
from schemas.touchpoint import Touchpoint

from .helpers import ROOT, journeys, read_all

EXAMPLES = ROOT / "deploy" / "examples"
MAPPINGS = ROOT / "deploy" / "mappings"
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+\.[\w.-]+")

CASES: dict[Kind, dict[str, Any]] = {
    "call-center": {
        "file": EXAMPLES / "contacts.csv",
        "mapping": MAPPINGS / "contact_center.toml",
        "bad_lines": [7, 16, 24, 32, 39, 45],
        "types": {
            "contact_queued": 45,
            "contact_answered": 39,
            "contact_abandoned": 6,
            "contact_transferred": 17,
            "contact_ended": 45,
        },
    },
    "store": {
        "file": EXAMPLES / "pos.jsonl",
        "mapping": MAPPINGS / "pos.toml",
        "bad_lines": [4, 12, 18, 25, 30, 34],
        "types": {"purchase": 27, "return": 5},
    },
}


def raw_payloads(settings: Settings) -> list[bytes]:
    topic = Topics.from_settings(settings.topics).raw
    return [value for _key, value in read_all(settings, topic) if value is not None]


def events_of(payloads: list[bytes]) -> list[Touchpoint]:
    return [
        Touchpoint.model_validate(event)
        for payload in payloads
        for event in envelope.decode(payload).events
    ]


def raw_contact_details(path: Path) -> tuple[set[str], set[str]]:
    """Every phone number and e-mail address written in a sample file."""
    text = path.read_text(encoding="utf-8")
    emails = {m.decode() for m in EMAIL.findall(text.encode())}
    if path.suffix == ".csv":
        phones = {row["ANI"] for row in csv.DictReader(io.StringIO(text)) if row["ANI"]}
    else:
        phones = set()
    return {p for p in phones if sum(c.isdigit() for c in p) >= 7}, emails


def assert_no_raw_contact_details(payloads: list[bytes], path: Path) -> None:
    blob = b"\n".join(payloads)
    assert not EMAIL.search(blob), EMAIL.search(blob)
    phones, emails = raw_contact_details(path)
    for phone in phones:
        digits = re.sub(r"\D", "", phone)
        for form in (phone, digits, normalize_phone(phone, "1"), normalize_phone(phone, "44")):
            assert form.encode() not in blob, form
    for email in emails:
        assert email.lower().encode() not in blob.lower()


@pytest.mark.parametrize("kind", ["call-center", "store"])
def test_ingesting_an_example_file(kind: Kind, settings: Settings, tmp_path: Path) -> None:
    case = CASES[kind]
    err = io.StringIO()
    assert run_ingest(settings, kind, case["file"], case["mapping"], err=err) == 1
    reported = [line for line in err.getvalue().splitlines() if line.startswith(str(case["file"]))]
    assert [int(line.split(":")[1]) for line in reported] == case["bad_lines"]

    payloads = raw_payloads(settings)
    events = events_of(payloads)
    assert Counter(e.event_type for e in events) == case["types"]
    assert len({e.event_id for e in events}) == len(events)
    assert_no_raw_contact_details(payloads, case["file"])
    check_identities(kind, events, PiiHasher(settings.pii))

    # Again, through the command line: the same ids are published a second time.
    log = tmp_path / "ingest.log"
    again = journeys(settings, "ingest", kind, str(case["file"]), log=log)
    assert again.wait(timeout=120) == 1, log.read_text()
    assert f"{case['file']}:{case['bad_lines'][0]}: " in log.read_text()
    twice = Counter(e.event_id for e in events_of(raw_payloads(settings)))
    assert set(twice) == {e.event_id for e in events}
    assert set(twice.values()) == {2}


def check_identities(kind: Kind, events: list[Touchpoint], hasher: PiiHasher) -> None:
    if kind == "store":
        assert all(e.channel == "store" and str(e.touchpoint).startswith("store:") for e in events)
        assert all(e.identity.loyalty_id or e.identity.customer_id for e in events)
        assert any(e.identity.email_hash for e in events)
        return
    assert len({e.properties["contact_id"] for e in events}) == 45
    first = [e for e in events if e.properties["contact_id"] == "C-20250303-0001"]
    assert [e.event_type for e in first] == [
        "contact_queued",
        "contact_answered",
        "contact_transferred",
        "contact_ended",
    ]
    assert {e.identity.phone_hash for e in first} == {hasher.phone("0117 496 0333")}
    assert all(e.channel == "call_center" and e.touchpoint == "queue:retention" for e in first)
    withheld = {
        (e.identity.phone_hash, e.identity.customer_id)
        for e in events
        if e.properties["contact_id"] == "C-20250303-0009"
    }
    assert withheld == {(None, "CUST-40404")}
