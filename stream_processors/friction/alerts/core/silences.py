"""Silences: for a while, an alert's series or a route pages no one (docs/concepts.md §6).

`journeys alerts silence SERIES|ROUTE --for DURATION --reason TEXT` writes a `Silence` to the
compacted `alert-silences` topic (keyed by its id; the sink keeps it in ClickHouse's
`alert_silences`). The webhook thread holds every silence and, before posting a page to a
team, asks whether each of the alert's series that team owns is silenced, by its series
(a glob over `<kind> <scope> <name>`, as `journeys alerts list` prints it) or by the route
that owns it (its `name`, `route[N]` or `default`). A page whose series are all silenced is
not posted; the alert itself is published and stored as always (silences act on pages, not
on detection). A silence ends at `ends_at`, wall-clock time: on-call silences for the next
hour of their day, not of the data's event time. Lifting one early writes it again ending
now.

Pure: the records, what a target string names, and the lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal, cast

from stream_processors.friction.core.rules import Series

Target = Literal["series", "route"]
SERIES_KINDS = ("friction", "dropoff", "entries", "volume")


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence: what it covers (`target` and `match`), from when until when, and why.
    `version` grows when it is written again (lifted early)."""

    silence_id: str
    target: Target
    match: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str | None = None
    version: int = 1

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def covers(self, series: Series, route: str) -> bool:
        if self.target == "route":
            return route == self.match
        return fnmatchcase(str(series), self.match)

    def lifted(self, now: datetime) -> Silence:
        """The next version, ending `now` (if it had not ended already)."""
        return replace(self, ends_at=min(self.ends_at, now), version=self.version + 1)

    def describe(self) -> str:
        return f"{self.target} {self.match!r} until {self.ends_at:%Y-%m-%d %H:%M} UTC"

    def to_dict(self) -> dict[str, Any]:
        """The record on the topic and the row in ClickHouse (times as epoch seconds)."""
        return {
            "silence_id": self.silence_id,
            "version": self.version,
            "target": self.target,
            "match": self.match,
            "starts_at": self.starts_at.timestamp(),
            "ends_at": self.ends_at.timestamp(),
            "reason": self.reason,
            "created_by": self.created_by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Silence:
        target = data["target"]
        if target not in ("series", "route"):
            raise ValueError(f"unknown silence target {target!r}")
        return cls(
            silence_id=str(data["silence_id"]),
            target=cast(Target, target),
            match=str(data["match"]),
            starts_at=_time(data["starts_at"]),
            ends_at=_time(data["ends_at"]),
            reason=str(data["reason"]),
            created_by=data.get("created_by"),
            version=int(data.get("version", 1)),
        )


def target_of(text: str, route_names: Iterable[str]) -> tuple[Target, str]:
    """What `journeys alerts silence TEXT` names: a series `<kind> <scope> <name>` (globs
    allowed, `*` for any name) or a route of the routing file; ValueError says why not."""
    words = text.split()
    if len(words) == 3 and words[0] in SERIES_KINDS:
        return "series", " ".join(words)
    names = list(route_names)
    if text.strip() in names:
        return "route", text.strip()
    raise ValueError(
        f"{text!r} is neither a series ('<kind> <scope> <name>', kind one of "
        f"{', '.join(SERIES_KINDS)}, as `journeys alerts list` prints it) nor a route "
        f"({', '.join(names)})"
    )


class Silences:
    """Every silence heard, the latest version of each."""

    def __init__(self) -> None:
        self._held: dict[str, Silence] = {}

    def apply(self, silence: Silence) -> None:
        held = self._held.get(silence.silence_id)
        if held is None or silence.version >= held.version:
            self._held[silence.silence_id] = silence

    def covering(self, series: Series, route: str, now: datetime) -> Silence | None:
        """An active silence that covers `series` (owned by `route`), if any."""
        for silence in self._held.values():
            if silence.active(now) and silence.covers(series, route):
                return silence
        return None

    def forget_ended(self, now: datetime) -> None:
        for sid, silence in list(self._held.items()):
            if silence.ends_at <= now:
                del self._held[sid]

    def __len__(self) -> int:
        return len(self._held)


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value))
