"""The records of the incident lifecycle (`incidents.py`): the evidence an incident
holds, the incident record it publishes, and their JSON forms.

An incident's id is a UUIDv5 of its series and the start of its first window, so a replay
or a restarted stage names it the same; its `version` grows with every record published,
so a sink (or a webhook receiver) keeps the latest and drops repeats.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast

from stream_processors.friction.core.rules import Alert, AlertKind, Series, Severity

Status = Literal["firing", "resolved", "retracted"]
# Fixed forever: incident ids are UUIDv5 in it.
INCIDENT_NAMESPACE = uuid.UUID("6d1f7a52-93c4-5e0b-b6f2-4a8e0c3d9b71")
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}


def incident_id(series: Series, first_ms: int) -> str:
    """Deterministic: the same series and first window start always give the same id."""
    return str(
        uuid.uuid5(INCIDENT_NAMESPACE, f"{series.kind}|{series.scope}|{series.name}|{first_ms}")
    )


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One detector alert (not retracted) an incident stands on. `decided_ms` is the start
    of the window that decided it; `first_ms` the first window of its evidence (one window
    earlier for a pair test)."""

    decided_ms: int
    first_ms: int
    rule: str
    alert_id: str
    observed: int
    volume: int
    expected: float | None  # None: no baseline yet (a fixed threshold fired)
    p_value: float | None
    severity: Severity
    explanation: str

    @classmethod
    def of(cls, alert: Alert, window_ms: int) -> Evidence:
        end_ms = epoch_ms(alert.window_end)
        return cls(
            decided_ms=end_ms - window_ms,
            first_ms=epoch_ms(alert.window_start),
            rule=alert.rule,
            alert_id=alert.alert_id,
            observed=alert.observed,
            volume=alert.volume,
            expected=None if math.isnan(alert.expected) else alert.expected,
            p_value=alert.p_value,
            severity=alert.severity,
            explanation=alert.explanation,
        )

    @property
    def key(self) -> tuple[int, str]:
        return self.decided_ms, self.rule

    def rank(self) -> tuple[int, int, bool]:
        """Which evidence speaks for an incident: the latest window, then the more severe,
        then the baseline rule (it has an expectation)."""
        return self.decided_ms, SEVERITY_RANK[self.severity], self.rule == "baseline"

    def to_json(self) -> list[Any]:
        return [
            self.decided_ms,
            self.first_ms,
            self.rule,
            self.alert_id,
            self.observed,
            self.volume,
            self.expected,
            self.p_value,
            self.severity,
            self.explanation,
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> Evidence:
        decided, first, rule, aid, observed, volume, expected, p, severity, text = row
        return cls(
            int(decided),
            int(first),
            str(rule),
            str(aid),
            int(observed),
            int(volume),
            _float(expected),
            _float(p),
            _severity(severity),
            str(text),
        )


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident of one series, as published: what, how much against what was expected,
    since when, how bad, and whether it is still going on. `team` and `cause` are filled in
    by the caller (routing and cause attribution) before it is sent."""

    incident_id: str
    version: int
    status: Status
    series: Series
    kind: AlertKind
    started_at: datetime  # the first window of its evidence
    last_window_start: datetime  # the latest window that alerted
    last_window_end: datetime
    windows: int  # how many windows alerted
    observed: int  # of the latest alerting window, as in `Alert`
    expected: float | None
    volume: int
    p_value: float | None
    severity: Severity  # the highest of its evidence
    explanation: str
    last_alert_id: str
    resolved_at: datetime | None = None  # the end of the last of the normal windows
    team: str | None = None
    cause: str | None = None
    # Raised from windows that had already closed (a late channel's export, late events): how
    # far, in seconds, the watermark was past the end of its first window when it was raised.
    late: bool = False
    found_late_by: int = 0

    def same_as(self, other: Incident | None) -> bool:
        """Equal but for the version: nothing to publish."""
        return other is not None and self == replace(other, version=self.version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO-8601 UTC strings)."""
        return {
            "incident_id": self.incident_id,
            "version": self.version,
            "status": self.status,
            "series": {
                "kind": self.series.kind,
                "scope": self.series.scope,
                "name": self.series.name,
            },
            "kind": self.kind,
            "started_at": self.started_at.isoformat(),
            "last_window_start": self.last_window_start.isoformat(),
            "last_window_end": self.last_window_end.isoformat(),
            "windows": self.windows,
            "observed": self.observed,
            "expected": self.expected,
            "volume": self.volume,
            "p_value": self.p_value,
            "severity": self.severity,
            "explanation": self.explanation,
            "last_alert_id": self.last_alert_id,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "team": self.team,
            "cause": self.cause,
            "late": self.late,
            "found_late_by": self.found_late_by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        series = data["series"]
        resolved = data.get("resolved_at")
        return cls(
            incident_id=str(data["incident_id"]),
            version=int(data["version"]),
            status=_status(data["status"]),
            series=Series(str(series["kind"]), str(series["scope"]), str(series["name"])),
            kind=cast(AlertKind, str(data["kind"])),
            started_at=datetime.fromisoformat(data["started_at"]),
            last_window_start=datetime.fromisoformat(data["last_window_start"]),
            last_window_end=datetime.fromisoformat(data["last_window_end"]),
            windows=int(data["windows"]),
            observed=int(data["observed"]),
            expected=_float(data.get("expected")),
            volume=int(data["volume"]),
            p_value=_float(data.get("p_value")),
            severity=_severity(data["severity"]),
            explanation=str(data["explanation"]),
            last_alert_id=str(data["last_alert_id"]),
            resolved_at=datetime.fromisoformat(resolved) if resolved else None,
            team=data.get("team"),
            cause=data.get("cause"),
            late=bool(data.get("late", False)),  # absent from records before it came
            found_late_by=int(data.get("found_late_by") or 0),
        )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _severity(value: Any) -> Severity:
    if value not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {value!r}")
    return cast(Severity, value)


def _status(value: Any) -> Status:
    if value not in ("firing", "resolved", "retracted"):
        raise ValueError(f"unknown status {value!r}")
    return cast(Status, value)
