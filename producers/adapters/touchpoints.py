"""Building touchpoints from one source record: deterministic ids and hashed identities.

Event ids are UUIDv5 of (source system, record id, derived event), so ingesting a file twice
publishes the same ids and the ingest stage drops the second copy as duplicates. Phone
numbers and e-mail addresses are hashed here and never leave this module raw: those of the
identity columns as identifiers, those inside any other text (a queue or agent name, a
disposition, the touchpoint) where they are found (`PiiHasher.text`, the detector every
producer uses).

Events are written as `schema_version` 2: the documented properties (deploy/mappings/
README.md) as before, plus the channel's typed block where the adapter gives one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from pydantic import ValidationError

from producers.adapters.errors import RecordError, UnidentifiedError
from producers.pii import PiiHasher
from schemas.touchpoint import Channel, Identity, PropertyValue, Touchpoint

# Fixed forever: changing it changes every adapter event id, and re-ingested files would no
# longer be recognized as duplicates.
EVENT_ID_NAMESPACE = uuid.UUID("0b4f6c1e-5a7d-5c38-9f2e-6a1d3e8b7c40")
# Withheld caller ids ("anonymous", "private", "+1") would all hash to one value and link
# unrelated callers into one person; fewer digits than this is not a phone number.
MIN_PHONE_DIGITS = 7
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def event_id(source: str, record_id: str, event_key: str) -> uuid.UUID:
    """The id of one derived event. The parts are JSON-encoded, so no choice of characters in
    them can make two different triples read as one."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, orjson.dumps([source, record_id, event_key]).decode())


def hashed_identity(
    hasher: PiiHasher,
    *,
    customer_id: str | None = None,
    loyalty_id: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> Identity:
    """The identity of a record with contact details hashed; raises `UnidentifiedError`
    when nothing usable is left."""
    usable_phone = phone if phone and sum(c.isdigit() for c in phone) >= MIN_PHONE_DIGITS else None
    usable_email = email if email and _EMAIL.match(email) else None
    if not (customer_id or loyalty_id or usable_email or usable_phone):
        raise UnidentifiedError(
            "no usable identifier: the mapped identity columns are empty or hold no real "
            "phone number or e-mail address"
        )
    try:
        return Identity(
            # Ids as the collector treats them: a contact detail given as an id is hashed.
            customer_id=customer_id and hasher.text(customer_id),
            loyalty_id=loyalty_id and hasher.text(loyalty_id),
            email_hash=hasher.email(usable_email) if usable_email else None,
            phone_hash=hasher.phone(usable_phone) if usable_phone else None,
        )
    except ValidationError as exc:
        raise RecordError(_first_error("identity", exc)) from None


@dataclass(frozen=True, slots=True)
class RecordEvents:
    """What the events derived from one record share; `event()` builds each of them.
    `scrub` is applied to every text the events carry (`PiiHasher.text`)."""

    channel: Channel
    source: str
    record_id: str
    identity: Identity
    scrub: Callable[[str], str]
    touchpoint: str | None = None
    session_id: str | None = None
    common: Mapping[str, PropertyValue] = field(default_factory=dict)

    def event(
        self,
        event_type: str,
        at: datetime,
        properties: Mapping[str, PropertyValue],
        key: str | None = None,
        detail: Mapping[str, PropertyValue] | None = None,
    ) -> Touchpoint:
        """One touchpoint; `key` tells apart several events of one type (the n-th transfer),
        `detail` the fields of the channel's typed block (unset ones are None)."""
        scrub = self.scrub
        merged = {
            k: scrub(v) if isinstance(v, str) else v
            for k, v in {**self.common, **properties}.items()
            if v is not None
        }
        typed = {} if detail is None else {self.channel.value: _given(detail, scrub)}
        try:
            return Touchpoint(
                event_id=event_id(self.source, self.record_id, key or event_type),
                channel=self.channel,
                source=self.source,
                event_type=event_type,
                schema_version=2,
                occurred_at=at,
                identity=self.identity,
                session_id=self.session_id and scrub(self.session_id),
                touchpoint=self.touchpoint and scrub(self.touchpoint),
                properties=merged,
                **typed,
            )
        except ValidationError as exc:
            raise RecordError(_first_error(event_type, exc)) from None


def _given(
    fields: Mapping[str, PropertyValue], scrub: Callable[[str], str]
) -> dict[str, PropertyValue]:
    return {
        name: scrub(value) if isinstance(value, str) else value
        for name, value in fields.items()
        if value is not None
    }


def _first_error(what: str, exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{what}: {where}: {first['msg']}" if where else f"{what}: {first['msg']}"
