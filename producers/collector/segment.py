"""One Segment call (track, page, screen, identify, alias, group) to one touchpoint.

Pure: no I/O, the time of receipt is an argument. The mapping, field by field:

- `messageId` -> `event_id`; a messageId that is not a UUID becomes a UUIDv5 of the write key
  and the messageId, so an SDK's retry of the same call dedupes downstream. A call without a
  messageId gets a UUIDv5 of its whole content, for the same reason.
- `timestamp` -> `occurred_at`; without it, `originalTimestamp` corrected for the client's
  clock skew as Segment does (`receivedAt - (sentAt - originalTimestamp)`); without both, the
  time of receipt. Naive times are read as UTC; times beyond the future tolerance, or older
  than the age bound (`processor.max_event_age`), are refused, the message naming the bound,
  never the time.
- `backfill`: true for history (`/v1/import`), which goes to the history domain's topics.
- `userId` -> `identity.customer_id`, `anonymousId` (alias: `previousId`) -> `anonymous_id`,
  `context.device.id` -> `device_id`. Traits (`traits`, `context.traits`) and properties whose
  name carries an identifier (`identifiers`: `email`, `phone`, `loyalty_id`, `loyaltyId`,
  `loyalty_card` by default, more per source) fill the identity (contact details as keyed
  hashes) and are removed from the properties; the call's own ids win over a trait's, and a
  second different value of one kind is dropped with a note. A group's traits are the
  group's: only contact details are taken out of them, never as the person's identifiers.
- `event_type`: the track call's `event`; `page_view`, `screen_view`, `identify`, `alias`,
  `group` for the others. `touchpoint`: by the event's channel and the source's fields
  (`places`): the page's path on web, the screen's name in apps, for every call. A name
  (the event's, the touchpoint's) holding a control character is refused, the field named.
- `attribution` (contract v3, so `schema_version` 3 when present): page URL and referrer with
  an allow-listed query, UTM, user-agent family and device class, the IP only if the source
  keeps it masked (`attribution`). Calls without any stay version 1.
- `channel`: the source's, refined within the digital channels by the context (a mobile
  library, device or OS means `app`, a browser library means `web`). Call-center and store
  sources keep theirs: their staff's devices say nothing about the customer's channel.
- `session_id`: `context.sessionId` (RudderStack's SDKs send one).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID, uuid5

import orjson
from pydantic import ValidationError

from producers.collector import properties, wire
from producers.collector.attribution import attribution_of
from producers.collector.auth import Source
from producers.collector.identifiers import CONTACT_KINDS, IDENTITY_FIELD, IdentifierTraits
from producers.collector.scrub import Scrubber
from schemas.deadletter import Reason
from schemas.touchpoint import Channel, Touchpoint

# Fixed forever: changing it changes every derived event id, and retries would stop deduping.
NAMESPACE = UUID("6f0a4e1c-57a4-5b8e-9a51-3c1f3c8a0d42")
MAX_NAME = 128
_SENDING_FIELDS = frozenset({"sentAt", "_metadata", "writeKey", "messageId"})
EVENT_TYPES = {
    "page": "page_view",
    "screen": "screen_view",
    "identify": "identify",
    "alias": "alias",
    "group": "group",
}
_APP_HINTS = ("ios", "android", "react-native", "flutter", "swift", "kotlin", "xamarin", "unity")
_WEB_HINTS = ("analytics.js", "analytics-next", "javascript", "browser")
_APP_OS = frozenset({"ios", "ipados", "android", "watchos", "tvos"})
_CONTROL_MESSAGE = (
    "holds a control or direction-formatting character (NUL, a line break, "
    "a right-to-left override, ...): names are plain text"
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one call was refused: the field (in the client's terms) and what is wrong."""

    field: str
    message: str
    reason: Reason = "invalid_field"


class Rejected(Exception):  # noqa: N818 (a result, not a failure of the collector)
    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.field}: {problem.message}")
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Received:
    """What every call of one request shares."""

    source: Source
    at: datetime
    future_tolerance: timedelta
    sent_at: Any = None
    peer: str | None = None  # the client's address, for attribution's masked IP only
    max_age: timedelta = timedelta(days=730)
    backfill: bool = False  # history (`/v1/import`): the touchpoints say so
    latest: datetime = dataclasses.field(init=False)  # the latest event time accepted
    earliest: datetime = dataclasses.field(init=False)  # the oldest event time accepted

    def __post_init__(self) -> None:
        object.__setattr__(self, "latest", self.at + self.future_tolerance)
        object.__setattr__(self, "earliest", self.at - self.max_age)


@dataclass(frozen=True, slots=True)
class Mapped:
    event: Touchpoint
    notes: tuple[str, ...]


class Encoded(NamedTuple):  # built per event: cheaper than a frozen dataclass
    """A mapped call ready for Kafka: its partition key and JSON, and the client's notes."""

    key: str
    fragment: bytes
    notes: tuple[str, ...]


def to_touchpoint(msg: dict[str, Any], call: str, rx: Received, scrubber: Scrubber) -> Mapped:
    """Map one call; raise `Rejected` with the field and reason if it cannot be used."""
    doc, notes = _document(msg, call, rx, scrubber)
    return Mapped(_validated(doc, call), notes)


def to_fragment(msg: dict[str, Any], call: str, rx: Received, scrubber: Scrubber) -> Encoded:
    """`to_touchpoint`, encoded: the same event as JSON, its partition key and the notes.
    The model is built only when `wire` cannot vouch for the document by itself."""
    doc, notes = _document(msg, call, rx, scrubber)
    encoded = wire.encode(doc)
    if encoded is None:
        event = _validated(doc, call)
        encoded = event.identity.partition_key(), event.model_dump_json().encode()
    return Encoded(*encoded, notes)


def _document(
    msg: dict[str, Any], call: str, rx: Received, scrubber: Scrubber
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The touchpoint as a plain document, not yet validated, and the notes for the client."""
    context = _dict(msg.get("context"))
    rules = rx.source.rules
    found = _Identifiers(rules.identifiers, scrubber)
    bounded = properties.bound(_property_pairs(msg, call, context, found), scrubber)
    notes = found.notes
    channel = channel_for(rx.source.channel, msg, context)
    touchpoint = _touchpoint(msg, channel, rx.source, scrubber)
    if touchpoint is not None and len(touchpoint) > MAX_NAME:
        notes.append(f"touchpoint: truncated to {MAX_NAME} characters")
        touchpoint = touchpoint[:MAX_NAME]
    attribution = attribution_of(
        msg,
        context,
        rules.attribution,
        scrubber,
        peer=rx.peer,
        ip_hash=scrubber.hasher.keyed,
    )
    # Every field, in the model's order: `wire` writes this document as it is.
    doc: dict[str, Any] = {
        "event_id": _event_id(rx.source.write_key, msg),
        "channel": channel,
        "source": rx.source.name,
        "event_type": _event_type(msg, call, scrubber),
        "schema_version": 1 if attribution is None else 3,
        "occurred_at": occurred_at(msg, rx),
        "received_at": rx.at,
        "identity": _identity(msg, call, context, scrubber, found),
        "session_id": _text(context.get("sessionId"), scrubber),
        "touchpoint": touchpoint,
        "properties": bounded.values,
        "backfill": rx.backfill,
    }
    if attribution is not None:
        doc["attribution"] = attribution
    return doc, (*notes, *bounded.notes)


def _validated(doc: dict[str, Any], call: str) -> Touchpoint:
    try:
        return Touchpoint.model_validate(doc)
    except ValidationError as exc:
        raise Rejected(_problem(exc, call)) from None


def _event_id(write_key: str, msg: dict[str, Any]) -> UUID | str:
    """`event_id_for`, with a messageId that is already a UUID's canonical text kept as text
    (parsing it into a UUID costs more than the rest of the event's mapping)."""
    message_id = msg.get("messageId")
    if type(message_id) is str and wire.is_canonical_uuid(message_id):
        return message_id
    return event_id_for(write_key, msg)


def event_id_for(write_key: str, msg: dict[str, Any]) -> UUID:
    message_id = msg.get("messageId")
    if isinstance(message_id, str):
        try:
            return UUID(message_id)
        except ValueError:
            pass
    if message_id is None or message_id == "":
        # What stays the same when an SDK retries: everything but the sending metadata.
        stable = {k: v for k, v in msg.items() if k not in _SENDING_FIELDS}
        try:
            message_id = orjson.dumps(stable, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:  # the intake refuses these first; never a 500 here
            raise Rejected(Problem("(event)", "cannot be hashed: nested too deeply")) from None
    return uuid5(NAMESPACE, f"{write_key}:{message_id}")


def occurred_at(msg: dict[str, Any], rx: Received) -> datetime:
    field = "timestamp"
    if msg.get("timestamp") is not None:
        when = _parse_time(msg["timestamp"], field)
    elif msg.get("originalTimestamp") is not None:
        field, when = "originalTimestamp", _skew_corrected(msg, rx)
    else:
        return rx.at
    # The message names the bound, never the time: a dead letter repeats no input value.
    if when > rx.latest:
        message = f"more than {rx.future_tolerance} ahead of the collector's clock"
        raise Rejected(Problem(field, message, "future_timestamp"))
    if when < rx.earliest:
        message = f"more than {rx.max_age} behind the collector's clock (processor.max_event_age)"
        raise Rejected(Problem(field, message, "old_timestamp"))
    return when


def _skew_corrected(msg: dict[str, Any], rx: Received) -> datetime:
    original = _parse_time(msg["originalTimestamp"], "originalTimestamp")
    sent_raw = msg.get("sentAt", rx.sent_at)
    try:
        sent = _parse_time(sent_raw, "sentAt") if sent_raw is not None else None
        return original if sent is None else rx.at - (sent - original)
    except (Rejected, OverflowError):
        return original  # a broken sentAt only loses the skew correction


def _parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise Rejected(Problem(field, "expected an ISO-8601 date-time string"))
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Rejected(Problem(field, "is not an ISO-8601 date-time")) from None


def channel_for(default: Channel, msg: dict[str, Any], context: dict[str, Any]) -> Channel:
    """The source's channel, refined by the context between web and app only."""
    if default not in (Channel.WEB, Channel.APP):
        return default
    library = _dict(context.get("library")).get("name")
    hint = _library_hint(str(library).lower()) if library else None
    device = os_name = ""
    if "device" in context or "os" in context:  # server SDKs send neither
        device = _lower(_dict(context.get("device")).get("type"))
        os_name = _lower(_dict(context.get("os")).get("name"))
    if hint is Channel.APP or device in _APP_OS or os_name in _APP_OS:
        return Channel.APP
    if msg.get("channel") == "mobile" or device in ("mobile", "tablet"):
        return Channel.APP
    if hint is Channel.WEB or msg.get("channel") == "browser":
        return Channel.WEB
    return default


@functools.lru_cache(maxsize=1024)  # a handful of SDK names, on every call
def _library_hint(library: str) -> Channel | None:
    """What an SDK's name says: a mobile library means app (first), a browser one web."""
    if any(h in library for h in _APP_HINTS):
        return Channel.APP
    if any(h in library for h in _WEB_HINTS):
        return Channel.WEB
    return None


def _event_type(msg: dict[str, Any], call: str, scrubber: Scrubber) -> str:
    if call != "track":
        return EVENT_TYPES[call]
    name = msg.get("event")
    if not isinstance(name, str) or not name.strip():
        raise Rejected(Problem("event", "required: the name of the tracked event"))
    if properties.has_control(name):
        raise Rejected(Problem("event", _CONTROL_MESSAGE))
    return scrubber.text(name)


def _touchpoint(
    msg: dict[str, Any], channel: Channel, source: Source, scrubber: Scrubber
) -> str | None:
    found = source.rules.touchpoint.of(msg, channel)
    if found is None:
        return None
    # A screen's or page's name is a name too: charts show it, routes match it.
    if properties.has_control(found):
        field = source.rules.touchpoint.field_of(msg, channel)
        raise Rejected(Problem(field, _CONTROL_MESSAGE))
    return scrubber.text(found)


def _identity(
    msg: dict[str, Any],
    call: str,
    context: dict[str, Any],
    scrubber: Scrubber,
    found: _Identifiers,
) -> dict[str, str | None]:
    anonymous = msg.get("previousId") if call == "alias" else None
    given = {  # the call's own ids win over what its traits say
        "customer_id": _text(msg.get("userId"), scrubber),
        "anonymous_id": _text(anonymous or msg.get("anonymousId"), scrubber),
        "device_id": _text(_dict(context.get("device")).get("id"), scrubber),
    }
    traits = found.found
    identity: dict[str, str | None] = {}
    for name in _IDENTITY_ORDER:
        value = given.get(name)
        from_traits = traits.get(name)
        if value is None:
            value = from_traits
        elif from_traits is not None and from_traits != value:
            found.notes.append(f"{found.where[name]}: differs from the call's {name}; dropped")
        identity[name] = value
    if not any(identity.values()):
        ids = "userId, anonymousId" + (", previousId" if call == "alias" else "")
        raise Rejected(Problem("userId", f"at least one of {ids} is required"))
    return identity


# The model's field order.
_IDENTITY_ORDER = (
    "customer_id",
    "anonymous_id",
    "device_id",
    "email_hash",
    "phone_hash",
    "loyalty_id",
)


class _Identifiers:
    """Identifiers taken out of a call's traits and properties by the source's names: the
    first of each kind counts (contact details hashed), later different ones are dropped with
    a note. Keyed by identity field; `where` says which trait each came from."""

    __slots__ = ("found", "names", "notes", "scrubber", "where")

    def __init__(self, names: IdentifierTraits, scrubber: Scrubber) -> None:
        self.names = names
        self.scrubber = scrubber
        self.found: dict[str, str] = {}
        self.where: dict[str, str] = {}
        self.notes: list[str] = []

    def take(self, where: str, key: str, value: Any, contacts_only: bool = False) -> bool:
        """True when `key` carries an identifier (it never becomes a property then)."""
        kind = self.names.kind(key)
        if kind is None or (contacts_only and kind not in CONTACT_KINDS):
            return False
        if kind in CONTACT_KINDS:
            taken = self.scrubber.contact(kind, value)
        else:
            taken = _text(value, self.scrubber)
            if taken is not None and len(taken) > wire.MAX_IDENTIFIER:
                self.notes.append(f"{where}.{key}: longer than {wire.MAX_IDENTIFIER}; dropped")
                return True
        field = IDENTITY_FIELD[kind]
        if taken is None:
            if value not in (None, ""):
                self.notes.append(f"{where}.{key}: not a string; dropped")
        elif self.found.setdefault(field, taken) != taken:
            self.notes.append(f"{where}.{key}: a second {kind} in one call; dropped")
        else:
            self.where.setdefault(field, f"{where}.{key}")
        return True


def _property_pairs(
    msg: dict[str, Any], call: str, context: dict[str, Any], found: _Identifiers
) -> list[tuple[str, Any]]:
    """The call's own properties (traits for identify and group), identifiers taken out."""
    context_traits = _dict(context.get("traits"))
    if call in ("identify", "group"):
        named = [("traits", _dict(msg.get("traits")))]
        if call == "identify":
            named.append(("context.traits", context_traits))
    elif call == "alias":
        named = []
    else:
        named = [("properties", _dict(msg.get("properties")))]
    group = call == "group"  # a group's traits describe the group, not the person
    kind = found.names.kind
    pairs: list[tuple[str, Any]] = []
    for where, values in named:  # the kind first: cached, and rarely not None
        pairs += [
            (k, v)
            for k, v in values.items()
            if kind(k) is None or not found.take(where, k, v, contacts_only=group)
        ]
    if call != "identify":  # identifiers only, for the other calls
        for key, value in context_traits.items():
            found.take("context.traits", key, value)
    return pairs + _call_fields(msg, call)


def _call_fields(msg: dict[str, Any], call: str) -> list[tuple[str, Any]]:
    """Top-level fields of page, screen and group calls worth keeping as properties."""
    if call in ("page", "screen"):
        return [(k, msg[k]) for k in ("name", "category") if msg.get(k) is not None]
    if call == "group" and msg.get("groupId") is not None:
        return [("group_id", msg["groupId"])]
    return []


def _text(value: Any, scrubber: Scrubber) -> str | None:
    """An identifier as text (SDKs may send numbers); empty means absent."""
    if type(value) is str:
        text = value.strip()
    elif isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    else:
        text = str(value).strip()
    return scrubber.text(text) if text else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _lower(value: Any) -> str:
    return str(value).lower() if value else ""


_FIELD_NAMES = {
    "identity.customer_id": "userId",
    "identity.anonymous_id": "anonymousId",
    "identity.device_id": "context.device.id",
    "session_id": "context.sessionId",
    "event_type": "event",
}


def _problem(exc: ValidationError, call: str) -> Problem:
    """The first validation error, named as the client knows the field."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    if where == "touchpoint":
        field = "name" if call == "screen" else "properties.path"
    elif call == "alias" and where == "identity.anonymous_id":
        field = "previousId"
    else:
        field = _FIELD_NAMES.get(where, where)
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return Problem(field, f"{first['msg']}{more}")
