"""The touchpoint envelope: the one contract every channel's event shares (docs/concepts.md §2).

`schema_version` says which version an event was written against:
- 1: the envelope, with channel detail and friction in free-form `properties`;
- 2: adds a typed block per channel (`web`, `app`, `call_center`, `store`; only the one
  named like the event's `channel`) and `friction`, signals the producer states itself.
  Both are optional, so a version 1 event is a version 2 event without them.
- 3: adds `attribution` (any channel): where the customer came from and on what, as typed
  fields (page URL, referrer, UTM, user-agent family, device class, a masked IP). Optional
  too: a version 2 event is a version 3 event without it.

What each version may change is in `schemas/COMPATIBILITY.md`.
"""

from __future__ import annotations

import operator
from datetime import UTC
from functools import partial
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.friction import Signal
from schemas.vocabulary import Channel, Name

MAX_EVENT_BYTES = 32 * 1024
MAX_PROPERTIES = 64
SCHEMA_VERSION = 3  # the newest version this build reads; every older one stays accepted
MAX_STATED_SIGNALS = 16


# Timezone-aware on input; stages normalize to UTC (`normalize_utc`) outside the validator,
# because a Python after-validator per datetime halves validation throughput here.
UtcDatetime = AwareDatetime
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PropertyValue = Annotated[str, StringConstraints(max_length=1024)] | int | float | bool | None


class Identity(BaseModel):
    """The identifiers an event carries; at least one is required (docs/concepts.md §2)."""

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


# -- version 2: typed channel blocks and stated friction ----------------------------------------
# A field whose description names a signal states that signal on the event carrying it.
# Thresholds (slow page, long wait, low survey score) stay in the friction mapping file,
# which reads a block's fields under their own names, like properties.

Text = Annotated[str, StringConstraints(max_length=256)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
UrlPath = Annotated[str, StringConstraints(max_length=2048, pattern=r"^/[^?#]*$")]
Url = Annotated[str, StringConstraints(max_length=2048)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# Typed means typed: numbers and flags are strict ("502" or 1 for true are refused), as the
# exported JSON Schema says to producers in other languages; an integer is a valid float.
Flag = Annotated[bool, Strict()]
HttpStatus = Annotated[int, Strict(), Field(ge=100, le=599)]
Clicks = Annotated[int, Strict(), Field(ge=0, le=10_000)]
Count = Annotated[int, Strict(), Field(ge=0, le=1_000_000_000)]
Transfers = Annotated[int, Strict(), Field(ge=0, le=100)]
Millis = Annotated[float, Strict(), Field(ge=0, le=3_600_000)]  # an hour
Seconds = Annotated[float, Strict(), Field(ge=0, le=2_592_000)]  # 30 days: e-mails wait days
Score = Annotated[float, Strict(), Field(ge=0, le=10)]  # 1-5 (CSAT) or 0-10 (NPS) scales
Measure = Annotated[float, Strict(), Field(ge=0, le=1_000_000_000_000)]  # small money units
DeviceClass = Literal["desktop", "mobile", "tablet", "bot", "other"]

# Serialization leaves out what the producer did not state. Builtins, not Python functions:
# pydantic calls them per field of every event it dumps (ingest dumps each one).
_unset = operator.not_  # None or an empty list; a block is always true, even an empty one
_is_none = partial(operator.is_, None)  # in blocks, where False and 0 are values


def _optional(description: str | None = None) -> Any:
    return Field(default=None, exclude_if=_is_none, description=description)


class Block(BaseModel):
    """A channel's typed detail: every field optional, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WebDetail(Block):
    """Typed detail of a web event (schema_version 2)."""

    path: UrlPath | None = _optional("the page's URL path, without query string or fragment")
    referrer: Url | None = _optional()
    http_status: HttpStatus | None = _optional("of the page or request; 500-599: `error`")
    load_ms: Millis | None = _optional("page load time")
    rage_clicks: Clicks | None = _optional("1 or more: `rage_click`")
    dead_clicks: Clicks | None = _optional("1 or more: `dead_click`")
    search_results: Count | None = _optional("results a search showed; 0: `search_no_results`")


class AppDetail(Block):
    """Typed detail of an app event (schema_version 2)."""

    screen: Name | None = _optional()
    app_version: Short | None = _optional()
    os: Short | None = _optional("the operating system: iOS, Android, ...")
    os_version: Short | None = _optional()
    http_status: HttpStatus | None = _optional("of the API call; 500-599: `error`")
    response_ms: Millis | None = _optional("of the API call")
    crash: Flag | None = _optional("the app crashed: `app_crash`")


class CallCenterDetail(Block):
    """Typed detail of a call-center event (schema_version 2). The signals of a contact's
    outcome count on every event that states them: state them once per contact, on the
    event that ends it (`contact_ended`)."""

    contact_id: Identifier | None = _optional()
    queue: Name | None = _optional()
    agent: Name | None = _optional()
    wait_seconds: Seconds | None = _optional("queue to answer, or to giving up")
    handle_seconds: Seconds | None = _optional("answer to end")
    transfers: Transfers | None = _optional("1 or more: `transfer`")
    disposition: Name | None = _optional("the wrap-up outcome: resolved, abandoned, ...")
    abandoned: Flag | None = _optional("nobody answered: `abandoned_call`")
    repeat_contact: Flag | None = _optional("the platform flags a repeat: `repeat_contact`")
    survey_score: Score | None = _optional()


class StoreDetail(Block):
    """Typed detail of a store visit or till transaction (schema_version 2)."""

    store_id: Name | None = _optional()
    till: Name | None = _optional()
    transaction_id: Identifier | None = _optional()
    amount: Measure | None = _optional("the transaction total, positive either way")
    currency: Currency | None = _optional("ISO 4217 code")
    items: Count | None = _optional()
    is_return: Flag | None = _optional("goods came back: `store_return`")
    out_of_stock: Flag | None = _optional("something asked for was not in stock: `out_of_stock`")
    wait_seconds: Seconds | None = _optional("queueing at the till")


class StatedSignal(BaseModel):
    """A signal the producer states (schema_version 2): it counts once per event, like one
    the friction mapping finds; `detail` and `value` are for people (the error code, the
    seconds waited), not for counting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal: Signal
    detail: Text | None = _optional("for people: an error code, a reason")
    value: Measure | None = _optional("a measure of it: seconds waited, HTTP status, ...")


class Attribution(Block):
    """Where the customer came from and on what (schema_version 3), on any channel. URLs keep
    only their allow-listed query parameters (UTM and what the source declares), never a
    fragment or credentials; the IP, when kept at all, is truncated or a keyed hash."""

    page_url: Url | None = _optional("the page's URL, its query reduced to an allow-list")
    referrer: Url | None = _optional("the referring URL, its query reduced like page_url")
    utm_source: Text | None = _optional()
    utm_medium: Text | None = _optional()
    utm_campaign: Text | None = _optional()
    utm_term: Text | None = _optional()
    utm_content: Text | None = _optional()
    user_agent_family: Short | None = _optional("the browser or app: Chrome, Mobile Safari, ...")
    device_class: DeviceClass | None = _optional()
    ip: Text | None = _optional("never raw: truncated (/24, /48) or a keyed hash")


BLOCK_FIELDS = ("web", "app", "call_center", "store")  # each named after its channel
VERSION_2_FIELDS = (*BLOCK_FIELDS, "friction")
VERSION_3_FIELDS = ("attribution",)


def _block(channel: str) -> Any:
    description = f"typed detail, only on events whose channel is {channel} (version 2)"
    return Field(default=None, exclude_if=_unset, description=description)


def _needs_version(field: str, info: ValidationInfo, added_in: int = 2) -> None:
    version = info.data.get("schema_version")
    if version is not None and version < added_in:
        raise PydanticCustomError(
            "schema_version",
            "`{field}` was added in schema_version {added_in}; this event says schema_version "
            "{version}",
            {"field": field, "version": version, "added_in": added_in},
        )


class Touchpoint(BaseModel):
    """One touchpoint event, as producers write it to `raw` and stages pass it on.

    Since version 2 an event can carry the typed block of its own channel (the field named
    like its `channel`) and `friction`, signals it states itself; both need
    `schema_version` 2, and neither changes what a version 1 event means. Since version 3
    it can carry `attribution`, which needs `schema_version` 3.
    """

    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    channel: Channel
    source: Name
    event_type: Name
    schema_version: Annotated[int, Field(ge=1, le=SCHEMA_VERSION)] = 1
    occurred_at: UtcDatetime
    received_at: UtcDatetime | None = None
    identity: Identity
    session_id: Identifier | None = None
    touchpoint: Name | None = None
    properties: Annotated[dict[Name, PropertyValue], Field(max_length=MAX_PROPERTIES)] = {}
    backfill: bool = False
    # Version 2. Left out of the serialized event while unset, so a version 1 event leaves
    # ingest exactly as before and a version 2 one exactly as its producer wrote it.
    web: WebDetail | None = _block("web")
    app: AppDetail | None = _block("app")
    call_center: CallCenterDetail | None = _block("call_center")
    store: StoreDetail | None = _block("store")
    friction: list[StatedSignal] = Field(
        default=[],
        max_length=MAX_STATED_SIGNALS,
        exclude_if=_unset,
        description="signals the producer states, each counted once per event (version 2)",
    )
    # Version 3.
    attribution: Attribution | None = Field(
        default=None,
        exclude_if=_is_none,
        description="where the customer came from and on what, any channel (version 3)",
    )

    @field_validator("web", "app", "call_center", "store", mode="after")
    @classmethod
    def _block_of_this_channel(cls, block: Block | None, info: ValidationInfo) -> Block | None:
        # Runs only when the field is given: version 1 events pay nothing for it.
        if block is None:
            return None
        name = info.field_name
        channel = info.data.get("channel")
        if channel is not None and channel != name:
            raise PydanticCustomError(
                "block_channel",
                "a `{name}` block belongs on channel {name} events; this event's channel is "
                "{channel}",
                {"name": name, "channel": str(channel)},
            )
        _needs_version(str(name), info)
        return block

    @field_validator("friction", mode="after")
    @classmethod
    def _friction_needs_version_2(
        cls, stated: list[StatedSignal], info: ValidationInfo
    ) -> list[StatedSignal]:
        if stated:
            _needs_version("friction", info)
        return stated

    @field_validator("attribution", mode="after")
    @classmethod
    def _attribution_needs_version_3(
        cls, attribution: Attribution | None, info: ValidationInfo
    ) -> Attribution | None:
        if attribution is not None:
            _needs_version("attribution", info, 3)
        return attribution

    def normalize_utc(self) -> Touchpoint:
        """Store times in UTC (docs/concepts.md §2); cheap when they already are."""
        if self.occurred_at.utcoffset():
            self.occurred_at = self.occurred_at.astimezone(UTC)
        if self.received_at is not None and self.received_at.utcoffset():
            self.received_at = self.received_at.astimezone(UTC)
        return self


TOUCHPOINT_ADAPTER: TypeAdapter[Touchpoint] = TypeAdapter(Touchpoint)


# Channel and Name live in schemas/vocabulary.py (schemas/friction.py needs them too); they are
# still imported from here.
__all__ = ["Channel", "Name", "Touchpoint"]
