"""`journeys privacy rotate-key`: carry every contact hash ClickHouse holds to the active key.

The active key must be rotated from the previous one (`pii.derived_from`): it hashes that
key's digests, so each stored hash's new-key form is computed without the address or number.
Each becomes an alias on the compacted `identity-key-aliases` topic (new form -> stored form),
which the ingest stage applies, so a person identified by e-mail before and after the rotation
stays one person (`stream_processors/privacy/core/rotation.py`).
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from producers.pii import derive
from schemas.settings import Settings
from schemas.topics import Topics

# Contact hashes as stored: in touchpoints and identity links (their identity tuples; every
# identifier of the map's overrides came in one of them).
_STORED = """
SELECT DISTINCT field, value FROM (
    SELECT 'email_hash' AS field, identity.email_hash AS value FROM touchpoints
    UNION ALL SELECT 'phone_hash', identity.phone_hash FROM touchpoints
    UNION ALL SELECT 'email_hash', identity.email_hash FROM identity_links
    UNION ALL SELECT 'phone_hash', identity.phone_hash FROM identity_links
) WHERE value IS NOT NULL AND value != ''"""


class RotationError(ValueError):
    """The settings do not describe a rotation to the active key."""


def aliases(settings: Settings, stored: list[tuple[str, str]]) -> dict[str, str]:
    """New-key identifier key -> stored identifier key, for each stored hash the active key
    was rotated from (directly or through others). Pure."""
    pii = settings.pii
    active = pii.active_key_id
    if active not in pii.derived_from:
        raise RotationError(
            f"the active key {active!r} replaces no key: set JOURNEYS_PII__DERIVED_FROM "
            f'(for example {{"{active}": "<previous key id>"}})'
        )
    found = {}
    for field, value in stored:
        new = derive(pii, value, active)
        if new is not None and new != value:
            found[f"{field}:{new}"] = f"{field}:{value}"
    return found


def rotate(settings: Settings, client: Client) -> int:
    """Publish the aliases of every stored contact hash; how many."""
    stored = [(str(f), str(v)) for f, v in client.query(_STORED).result_rows]
    found = aliases(settings, stored)
    topic = Topics.from_settings(settings.topics).identity_key_aliases
    producer = Producer({**settings.kafka.as_librdkafka_dict(), "enable.idempotence": True})
    for new, first in found.items():
        producer.produce(topic, first.encode(), new.encode())
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("Kafka did not take the aliases within 60 s")
    return len(found)
