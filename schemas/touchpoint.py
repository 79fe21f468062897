"""The touchpoint envelope: the one contract every channel's event shares (domain.md §2).

This is the first version of the contract; channel-specific event types and typed friction
signals extend it in later schema versions. `schema_version` says which version an event
was written against.
"""

from __future__ import annotations

from datetime import UTC
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

MAX_EVENT_BYTES = 32 * 1024
MAX_PROPERTIES = 64


class Channel(StrEnum):
    WEB = "web"
    APP = "app"
    CALL_CENTER = "call_center"
    STORE = "store"


# Timezone-aware on input; stages normalize to UTC (`normalize_utc`) outside the validator,
# because a Python after-validator per datetime halves validation throughput here.
UtcDatetime = AwareDatetime
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PropertyValue = Annotated[str, StringConstraints(max_length=1024)] | int | float | bool | None


class Identity(BaseModel):
    """The identifiers an event carries; at least one is required (domain.md §2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: Identifier | None = None
    anonymous_id: Identifier | None = None
    device_id: Identifier | None = None
    email_hash: Identifier | None = None
    phone_hash: Identifier | None = None
    loyalty_id: Identifier | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Identity:
        # Spelled out: this runs once per event, and a generator over getattr costs 4x.
        if not (
            self.customer_id
            or self.anonymous_id
            or self.device_id
            or self.email_hash
            or self.phone_hash
            or self.loyalty_id
        ):
            raise ValueError("at least one identifier is required")
        return self

    def partition_key(self) -> str:
        """The identifier that keys an event on `raw`: the most stable one it carries, so a
        person's events (and a re-sent event) land on the same partition."""
        for name in IDENTIFIER_FIELDS:
            value = getattr(self, name)
            if value:
                return f"{name}:{value}"
        raise AssertionError("validated identity has no identifier")


# Priority order: the most stable identifier first.
IDENTIFIER_FIELDS = (
    "customer_id",
    "loyalty_id",
    "email_hash",
    "phone_hash",
    "device_id",
    "anonymous_id",
)


class Touchpoint(BaseModel):
    """One touchpoint event, as producers write it to `raw` and stages pass it on."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    channel: Channel
    source: Name
    event_type: Name
    schema_version: Annotated[int, Field(ge=1, le=1)] = 1
    occurred_at: UtcDatetime
    received_at: UtcDatetime | None = None
    identity: Identity
    session_id: Identifier | None = None
    touchpoint: Name | None = None
    properties: Annotated[dict[Name, PropertyValue], Field(max_length=MAX_PROPERTIES)] = {}
    backfill: bool = False

    def normalize_utc(self) -> Touchpoint:
        """Store times in UTC (domain.md §2); cheap when they already are."""
        if self.occurred_at.utcoffset():
            self.occurred_at = self.occurred_at.astimezone(UTC)
        if self.received_at is not None and self.received_at.utcoffset():
            self.received_at = self.received_at.astimezone(UTC)
        return self


TOUCHPOINT_ADAPTER: TypeAdapter[Touchpoint] = TypeAdapter(Touchpoint)
