"""What the contact-detail detector gets wrong, and what it costs.

- miss rate: generated texts holding a phone (Faker's providers of 14 locales) or an
  e-mail address (Faker's, and Unicode ones) that still hold it raw after scrubbing; phones
  written as bare digit strings (no `+`, no trunk `0`) are counted apart, as the detector
  reads them as ids on purpose;
- false-scrub rate: generated texts holding no contact detail (order ids, dates like
  20240115 and 2024-01-15, amounts like 1,299.00, SKUs, timestamps, UUIDs) that scrubbing
  changes;
- cost: ns per event of the ingest stage's work on messages of typical events, without and
  with the scrub pass, in the same run.

Run: `.venv/bin/python -m tests.bench.scrub_rates` (seeded: the same figures every run).
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from faker import Faker

from producers.pii import PiiHasher
from schemas.settings import PiiSettings
from stream_processors.ingest.core.admission import Ingest
from tests.property.test_scrub_contact_details import LOCALES

N = 2_000
HASHER = PiiHasher(PiiSettings())


def contact_texts(rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """(phones written as phones, phones as bare digits, e-mail addresses)."""
    written: list[str] = []
    bare: list[str] = []
    emails: list[str] = []
    for n in range(N):
        faker = Faker(LOCALES[n % len(LOCALES)])
        faker.seed_instance(rng.randrange(2**32))
        phone = str(faker.phone_number())
        dialled = not phone.isdigit() or (phone.startswith("0") and not phone.startswith("00"))
        (written if dialled else bare).append(phone)
        email = str(faker.email()) if n % 2 else f"{faker.first_name().lower()}@exämple.de"
        emails.append(email)
    return written, bare, emails


def other_texts(rng: random.Random) -> dict[str, list[str]]:
    """Texts with numbers that are not contact details, by kind."""

    def day() -> datetime:
        return datetime(2020, 1, 1) + timedelta(days=rng.randrange(2_500))

    return {
        "order id": [
            rng.choice(["#{}", "ORD-{}", "order {}", "{}"]).format(rng.randrange(10**5, 10**11))
            for _ in range(N)
        ],
        "date": [
            day().strftime(rng.choice(["%Y%m%d", "%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%m/%d/%Y"]))
            for _ in range(N)
        ],
        "amount": [
            rng.choice(["{:,.2f}", "{:.2f} EUR", "USD {:,.2f}"]).format(
                rng.randrange(100, 10**7) / 100
            )
            for _ in range(N)
        ],
        "sku": [
            f"SKU-{rng.randrange(1000, 9999)}-{rng.randrange(10**5, 10**6)}"
            if n % 2
            else str(rng.randrange(10**7, 10**8))
            for n in range(N)
        ],
        "timestamp": [
            str(rng.randrange(1_600_000_000_000, 1_800_000_000_000))
            if n % 2
            else (
                day() + timedelta(seconds=rng.randrange(86_400), microseconds=rng.randrange(10**6))
            ).isoformat()
            + "Z"
            for n in range(N)
        ],
        "uuid": [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(N)],
    }


def miss_rate(values: list[str]) -> float:
    texts = [f"please call {v} after lunch" for v in values]
    return sum(v in HASHER.text(t) for v, t in zip(values, texts, strict=True)) / len(values)


def false_rate(texts: list[str]) -> float:
    return sum(HASHER.text(f"note: {t} ok") != f"note: {t} ok" for t in texts) / len(texts)


def typical_event(n: int) -> dict[str, object]:
    return {
        "event_id": str(uuid.UUID(int=random.Random(n).getrandbits(128), version=4)),
        "channel": "web",
        "source": "web-shop",
        "event_type": "checkout_step",
        "schema_version": 1,
        "occurred_at": f"2025-03-03T09:{n % 60:02}:{n % 57:02}.{n:06}+00:00",
        "identity": {"customer_id": f"c-{n % 500}", "anonymous_id": f"anon-{n}"},
        "session_id": f"s-{n // 8}",
        "touchpoint": "/checkout/payment",
        "properties": {
            "step": 3,
            "sku": f"SKU-{n % 97}",
            "amount": 59.9,
            "currency": "EUR",
            "order_id": f"ORD-{100000 + n}",
            "search": "red shoes",
        },
    }


def ns_per_event(scrub: bool, rounds: int = 7) -> float:
    """The ingest stage's work on messages of 50 typical events, from the payload's bytes:
    decode, (the scrub pass over every text of every event), process. Each message's best
    time over the rounds, so that what other processes do to the machine drops out."""
    payloads = [orjson.dumps([typical_event(n) for n in range(i, i + 50)]) for i in range(0, N, 50)]
    now = datetime(2025, 3, 3, 10, tzinfo=UTC)
    total = 0
    for payload in payloads:
        best = None
        for _ in range(rounds):
            core = Ingest({}, timedelta(days=1), timedelta(minutes=5))
            start = time.perf_counter_ns()
            events = orjson.loads(payload)
            if scrub:
                events = [HASHER.document(event) for event in events]
            core.process(events, now)
            took = time.perf_counter_ns() - start
            best = took if best is None else min(best, took)
        total += best or 0
    return total / N


def main() -> None:
    rng = random.Random(19)
    written, bare, emails = contact_texts(rng)
    print(f"miss rate, phones written as phones ({len(written)}): {miss_rate(written):.1%}")
    print(f"miss rate, phones as bare digits ({len(bare)}, read as ids): {miss_rate(bare):.1%}")
    print(f"miss rate, e-mail addresses ({len(emails)}): {miss_rate(emails):.1%}")
    others = other_texts(rng)
    for kind, texts in others.items():
        print(f"false-scrub rate, {kind} ({len(texts)}): {false_rate(texts):.2%}")
    everything = [t for texts in others.values() for t in texts]
    print(f"false-scrub rate, all ({len(everything)}): {false_rate(everything):.2%}")
    # Interleaved, best of each: the machine's load moves both alike.
    runs = [(ns_per_event(False), ns_per_event(True)) for _ in range(3)]
    before, after = min(r[0] for r in runs), min(r[1] for r in runs)
    print(
        f"ingest core per typical event: {before:,.0f} ns without the scrub pass, "
        f"{after:,.0f} ns with it (x{after / before:.2f})"
    )


if __name__ == "__main__":
    main()
