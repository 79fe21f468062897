"""The alert a person is paged with: one per problem, over the per-series incidents it
groups (`groups.py`), with the journeys that show it (docs/concepts.md §6).

An `AlertRecord` is an `Incident` (so the webhook bodies render it as they render any
incident: `incident_id` is the alert's id, `version` its version) that also carries the
other series it groups (`related`), a few example journeys, the route that chose the team,
and `notify`: whether this version is one to page about (the alert opened, resolved, was
withdrawn or fired again, or a team that was not paged yet came to own one of its series), as
opposed to an update of its figures. Who is paged and why is `groups.py`'s decision: `teams`
own its series now (the headline's first), `page` are paged by this version, `paged_before`
were paged by earlier ones, and `change` says what happened in words. Its JSON form is
`Incident.to_dict()` plus those fields, plus flat columns for the ClickHouse table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from stream_processors.friction.alerts.core.causes import place
from stream_processors.friction.alerts.core.incident_records import Incident, Status, epoch_ms
from stream_processors.friction.core.rules import AlertKind, Series


@dataclass(frozen=True, slots=True)
class Example:
    """A journey that shows the problem: whose, when, where, what happened."""

    person_id: str
    at_ms: int
    channel: str
    touchpoint: str | None
    what: str  # the signals seen, or "dropped off at <stage>"
    journey_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "at": self.at_ms / 1000,
            "channel": self.channel,
            "touchpoint": self.touchpoint,
            "what": self.what,
            "journey_id": self.journey_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        return cls(
            str(data["person_id"]),
            round(float(data["at"]) * 1000),
            str(data["channel"]),
            data.get("touchpoint"),
            str(data["what"]),
            data.get("journey_id"),
        )


@dataclass(frozen=True, slots=True)
class Related:
    """Another series' incident grouped into the alert."""

    incident_id: str
    series: Series
    kind: AlertKind
    status: Status
    started_at: datetime
    observed: int
    expected: float | None
    team: str | None = None  # the owning team, when the stage routes

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "series": {
                "kind": self.series.kind,
                "scope": self.series.scope,
                "name": self.series.name,
            },
            "kind": self.kind,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "observed": self.observed,
            "expected": self.expected,
            "team": self.team,
        }

    @classmethod
    def of(cls, incident: Incident) -> Related:
        return cls(
            incident.incident_id,
            incident.series,
            incident.kind,
            incident.status,
            incident.started_at,
            incident.observed,
            incident.expected,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Related:
        s = data["series"]
        return cls(
            str(data["incident_id"]),
            Series(str(s["kind"]), str(s["scope"]), str(s["name"])),
            data["kind"],
            data["status"],
            datetime.fromisoformat(data["started_at"]),
            int(data["observed"]),
            None if data["expected"] is None else float(data["expected"]),
            data.get("team"),
        )


@dataclass(frozen=True, slots=True)
class AlertRecord(Incident):
    """One alert, as published; see the module docstring."""

    related: tuple[Related, ...] = ()
    examples: tuple[Example, ...] = ()
    route: str | None = None
    notify: bool = False
    teams: tuple[str, ...] = ()
    page: tuple[str, ...] = ()
    paged_before: tuple[str, ...] = ()
    change: str | None = None

    def content_equal(self, other: AlertRecord | None) -> bool:
        """Equal but for the version and the paging decision: nothing new to publish."""
        return other is not None and self == replace(
            other,
            version=self.version,
            notify=self.notify,
            page=self.page,
            paged_before=self.paged_before,
            change=self.change,
        )

    def series_of(self, team: str) -> list[Series]:
        """The alert's series (headline first) that `team` owns."""
        found = [self.series] if self.team == team else []
        return found + [r.series for r in self.related if r.team == team]

    def to_dict(self) -> dict[str, Any]:
        data = Incident.to_dict(self)
        data.update(
            related=[r.to_dict() for r in self.related],
            examples=[e.to_dict() for e in self.examples],
            route=self.route,
            notify=self.notify,
            place=place(self.series),
            teams=list(self.teams),
            page=list(self.page),
            paged_before=list(self.paged_before),
            change=self.change,
        )
        return data

    def row(self) -> dict[str, Any]:
        """The record with flat columns for ClickHouse (times also as epoch seconds)."""
        data = self.to_dict()
        data.update(
            series_kind=self.series.kind,
            scope=self.series.scope,
            series_name=self.series.name,
            started_at=_s(self.started_at),
            last_window_start=_s(self.last_window_start),
            last_window_end=_s(self.last_window_end),
            resolved_at=None if self.resolved_at is None else _s(self.resolved_at),
            related_series=[str(r.series) for r in self.related],
            related_ids=[r.incident_id for r in self.related],
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertRecord:
        """Read `to_dict()` (or `row()`) output back."""
        data = dict(data)
        for name in ("started_at", "last_window_start", "last_window_end", "resolved_at"):
            value = data.get(name)
            if isinstance(value, int | float):
                data[name] = datetime.fromtimestamp(value, UTC).isoformat()
        base = Incident.from_dict(data)
        fields = {f: getattr(base, f) for f in Incident.__dataclass_fields__}
        return cls(
            **fields,
            related=tuple(Related.from_dict(r) for r in data.get("related", ())),
            examples=tuple(Example.from_dict(e) for e in data.get("examples", ())),
            route=data.get("route"),
            notify=bool(data.get("notify", False)),
            teams=tuple(data.get("teams") or ()),
            page=tuple(data.get("page") or ()),
            paged_before=tuple(data.get("paged_before") or ()),
            change=data.get("change"),
        )


def _s(when: datetime) -> float:
    return epoch_ms(when) / 1000
