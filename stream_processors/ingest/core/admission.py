"""The first stage's logic: validate raw events, reject bad ones with a reason, and drop
repeated `event_id`s seen within the retention horizon (docs/concepts.md §8).

Pure: the state (`seen`) is any mutable mapping handed in, and `now` is an argument.

Most events take the row path (`schemas.touchpoint_row`): validated into a plain dict and
written by orjson, about three times cheaper than a model per event. An event the row path
does not vouch for takes the model path, which decides, gives the exact errors, and writes
byte-identical output for what it accepts.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.deadletter import FieldError, Reason
from schemas.touchpoint import MAX_EVENT_BYTES, Touchpoint
from schemas.touchpoint_row import TouchpointRow, fragment_event_id, read_row, row_json


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event the stage refused, with the payload exactly as it was seen."""

    reason: Reason
    raw: bytes
    errors: tuple[FieldError, ...] = ()
    detail: str = ""
    event_id: str | None = None


@dataclass(slots=True)
class IngestResult:
    """What one message's events became: forwarded fragments, rejections, duplicates."""

    fragments: list[bytes] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: int = 0
    max_occurred_ms: int | None = None  # of the timely channels' events

    @property
    def accepted(self) -> list[Touchpoint]:
        """The forwarded events as models (for tests and tools; the stage needs only bytes)."""
        return [Touchpoint.model_validate_json(f) for f in self.fragments]


@dataclass(slots=True)
class _Call:
    """What one `process` call's events share."""

    now: datetime
    now_utc: datetime
    now_s: int
    latest: datetime  # the newest occurred_at not refused as in the future
    earliest: datetime  # the oldest occurred_at not refused as too old
    out: IngestResult
    timely: list[datetime] = field(default_factory=list)


class Ingest:
    """Validates and deduplicates events. `seen` maps event id -> first-seen epoch seconds."""

    def __init__(
        self,
        seen: MutableMapping[str, int],
        horizon: timedelta,
        future_tolerance: timedelta,
        late_channels: frozenset[str] = frozenset(),
        max_age: timedelta = timedelta(days=730),
    ) -> None:
        self.seen = seen
        self.max_age = max_age
        # Their events do not move the watermark: a store batch published hours late must
        # not hold it back, and one ahead of the web must not push it past web events.
        self.late_channels = late_channels
        self.horizon_s = int(horizon.total_seconds())
        self.future_tolerance = future_tolerance

    def process(self, events: list[Any], now: datetime) -> IngestResult:
        """Handle the events of one message, in order; the first copy of an id wins."""
        call = _Call(
            now,
            now.astimezone(UTC) if now.utcoffset() else now,
            int(now.timestamp()),
            now + self.future_tolerance,
            now - self.max_age,
            IngestResult(),
        )
        for raw in events:
            row = read_row(raw)
            if row is None or not self._row(row, call):
                self._model(raw, call)
        if call.timely:
            call.out.max_occurred_ms = int(max(call.timely).timestamp() * 1000)
        return call.out

    def _row(self, row: TouchpointRow, call: _Call) -> bool:
        """The row path; False hands the event to the model path untouched."""
        occurred = row["occurred_at"]
        if occurred > call.latest or occurred < call.earliest:
            return False  # rare: the model path words the rejection
        received = row["received_at"]
        if received is None:
            row["received_at"] = call.now_utc
        elif received.utcoffset():
            row["received_at"] = received.astimezone(UTC)
        if occurred.utcoffset():
            row["occurred_at"] = occurred = occurred.astimezone(UTC)
        fragment = row_json(row)
        if fragment is None:
            return False
        # Read back from the fragment: a tenth of the cost of str(UUID), same text.
        key = fragment_event_id(fragment)
        if key in self.seen:
            call.out.duplicates += 1
        elif len(fragment) > MAX_EVENT_BYTES:
            return False
        else:
            self.seen[key] = call.now_s
            call.out.fragments.append(fragment)
            if row["channel"] not in self.late_channels:
                call.timely.append(occurred)
        return True

    def _model(self, raw: Any, call: _Call) -> None:
        """The model path: the reference behaviour, exact errors included."""
        out = call.out
        try:
            event = Touchpoint.model_validate(raw)
        except ValidationError as exc:
            out.rejected.append(_invalid(raw, exc))
            return
        out_of_bounds = self._out_of_bounds(raw, event, call)
        if out_of_bounds is not None:
            out.rejected.append(out_of_bounds)
            return
        key = str(event.event_id)
        if key in self.seen:
            out.duplicates += 1
            return
        if event.received_at is None:
            event.received_at = call.now
        fragment = event.normalize_utc().model_dump_json().encode()
        if len(fragment) > MAX_EVENT_BYTES:
            out.rejected.append(
                Rejection(
                    "oversized",
                    orjson.dumps(raw),
                    event_id=key,
                    detail=f"{len(fragment)} bytes > {MAX_EVENT_BYTES}",
                )
            )
            return
        self.seen[key] = call.now_s
        out.fragments.append(fragment)
        if event.channel not in self.late_channels:
            call.timely.append(event.occurred_at)

    def _out_of_bounds(self, raw: Any, event: Touchpoint, call: _Call) -> Rejection | None:
        """A rejection for an event time the clock does not allow: ahead by more than the
        future tolerance, or older than the age bound. The detail names the bound and the
        stage's clock, never the event's time (a dead letter repeats no input value)."""
        if event.occurred_at > call.latest:
            reason: Reason = "future_timestamp"
            what = f"more than {self.future_tolerance} ahead of"
        elif event.occurred_at < call.earliest:
            reason, what = "old_timestamp", f"more than {self.max_age} behind"
        else:
            return None
        message = f"{what} the stage's clock ({call.now.isoformat()})"
        return Rejection(
            reason,
            orjson.dumps(raw),
            errors=(FieldError(field="occurred_at", message=message),),
            event_id=str(event.event_id),
            detail=f"occurred_at: {message}",
        )

    def expire(self, now: datetime, limit: int = 10_000) -> int:
        """Forget ids first seen longer ago than the horizon; at most `limit` per call.

        The mapping keeps insertion order, which is first-seen order, so the scan stops at the
        first id still inside the horizon.
        """
        cutoff = int(now.timestamp()) - self.horizon_s
        stale: list[str] = []
        for key, seen_at in self.seen.items():
            if seen_at >= cutoff or len(stale) >= limit:
                break
            stale.append(key)
        for key in stale:
            del self.seen[key]
        return len(stale)


def _invalid(raw: Any, exc: ValidationError) -> Rejection:
    errors = tuple(field_errors(exc))
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    reason: Reason = "invalid_field" if isinstance(raw, dict) else "not_an_object"
    return Rejection(
        reason,
        orjson.dumps(raw),
        errors=errors,
        detail="; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
        event_id=event_id if isinstance(event_id, str) else None,
    )


# Pydantic errors whose message can quote the input (a UUID's parse error names the bad
# character): their value-free wording.
_VALUE_FREE = {
    "uuid_parsing": "Input should be a valid UUID",
    "uuid_type": "Input should be a valid UUID",
}
INPUT_KEY = "<key>"
_NAME = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]{0,39}"
)  # a key from the payload (a property's name, an unknown field)


def field_errors(exc: ValidationError) -> list[FieldError]:
    """The field and what is wrong with it, never the rejected value: the payload may hold
    contact details where a field was expected (an e-mail in `occurred_at`), and a dead
    letter's errors are read by people and tools that must not see them (the raw payload,
    kept as evidence, is the one place the value stays). Keys that come from the payload
    (property names, unknown fields) are named `<key>`."""
    found: list[FieldError] = []
    for err in exc.errors(include_url=False):
        found.append(FieldError(field=_where(err["loc"], err["type"]), message=_what(err)))
    return found


def _where(loc: tuple[int | str, ...], kind: str) -> str:
    parts = [str(p) for p in loc]
    if parts[:1] == ["properties"] and len(parts) > 1 and not _plain_name(parts[1]):
        parts[1] = INPUT_KEY
    if kind == "extra_forbidden" and parts and not _plain_name(parts[-1]):
        parts[-1] = INPUT_KEY
    return ".".join(parts) or "(event)"


def _plain_name(key: str) -> bool:
    """A key that reads as a field name (letters, digits, `_`; few digits): named as it is.
    Anything else (an e-mail, a phone number, a token) could be a value and is not."""
    return _NAME.fullmatch(key) is not None and sum(c.isdigit() for c in key) <= 4


def _what(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "not a field of the contract (extra inputs are not permitted)"
    message = _VALUE_FREE.get(kind, err["msg"])
    given = err.get("input")
    if isinstance(given, str) and len(given) >= 3 and given in message:
        return f"invalid value ({kind})"  # a message that would quote the value
    return str(message)
