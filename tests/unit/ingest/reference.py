"""The ingest core as it was before the row path (`schemas.touchpoint_row`): one `Touchpoint`
model per event, validated and dumped by pydantic. Kept verbatim as the reference the
equivalence property test and the core benchmark compare the current core with.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.deadletter import FieldError, Reason
from schemas.touchpoint import MAX_EVENT_BYTES, Touchpoint
from stream_processors.ingest.core.admission import Rejection


@dataclass(slots=True)
class ReferenceResult:
    """What one message's events became: forwarded fragments, rejections, duplicates."""

    accepted: list[Touchpoint] = field(default_factory=list)
    fragments: list[bytes] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: int = 0
    max_occurred_ms: int | None = None  # of the timely channels' events


class ReferenceIngest:
    """Validates and deduplicates events. `seen` maps event id -> first-seen epoch seconds."""

    def __init__(
        self,
        seen: MutableMapping[str, int],
        horizon: timedelta,
        future_tolerance: timedelta,
        late_channels: frozenset[str] = frozenset(),
    ) -> None:
        self.seen = seen
        # Their events do not move the watermark: a store batch published hours late must
        # not hold it back, and one ahead of the web must not push it past web events.
        self.late_channels = late_channels
        self.horizon_s = int(horizon.total_seconds())
        self.future_tolerance = future_tolerance

    def process(self, events: list[Any], now: datetime) -> ReferenceResult:
        """Handle the events of one message, in order; the first copy of an id wins."""
        result = ReferenceResult()
        now_s = int(now.timestamp())
        latest_allowed = now + self.future_tolerance
        for raw in events:
            self._one(raw, now, now_s, latest_allowed, result)
        late = self.late_channels
        timely = [e.occurred_at for e in result.accepted if e.channel not in late]
        if timely:
            result.max_occurred_ms = int(max(timely).timestamp() * 1000)
        return result

    def _one(
        self, raw: Any, now: datetime, now_s: int, latest: datetime, out: ReferenceResult
    ) -> None:
        try:
            event = Touchpoint.model_validate(raw)
        except ValidationError as exc:
            out.rejected.append(_invalid(raw, exc))
            return
        if event.occurred_at > latest:
            out.rejected.append(
                Rejection(
                    "future_timestamp",
                    orjson.dumps(raw),
                    event_id=str(event.event_id),
                    detail=f"occurred_at {event.occurred_at.isoformat()} is more than "
                    f"{self.future_tolerance} ahead of {now.isoformat()}",
                )
            )
            return
        key = str(event.event_id)
        if key in self.seen:
            out.duplicates += 1
            return
        if event.received_at is None:
            event.received_at = now
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
        self.seen[key] = now_s
        out.accepted.append(event)
        out.fragments.append(fragment)

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
    errors = tuple(
        FieldError(field=".".join(str(p) for p in err["loc"]) or "(event)", message=err["msg"])
        for err in exc.errors(include_url=False, include_input=False)
    )
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    reason: Reason = "invalid_field" if isinstance(raw, dict) else "not_an_object"
    return Rejection(
        reason,
        orjson.dumps(raw),
        errors=errors,
        detail="; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
        event_id=event_id if isinstance(event_id, str) else None,
    )
