"""What the friction detector decides about: series, fixed thresholds, and alert records.

Alerts are plain frozen records with a deterministic id (the rule, the series and the start
of the window that decided it), so a replay or a re-emitted window sends the same id again
and a sink keeps the latest version. Routing to the owning team, example journeys and the
firing/resolved lifecycle are added downstream.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Literal, NamedTuple

AlertKind = Literal["friction_spike", "dropoff_spike", "entries_collapse", "volume_collapse"]
# `baseline` and `threshold` decide one window (or two); `cusum` the run of recent windows
# (`sequential.py`); `progression` a stage's entrants in flight (`progression.py`).
Rule = Literal["baseline", "threshold", "cusum", "progression"]
Severity = Literal["warning", "critical"]
RULES: tuple[Rule, ...] = ("baseline", "threshold")  # re-decided on a window's late versions
# Fixed forever: alert ids are UUIDv5 in it, so a replay sends the same ids.
ALERT_NAMESPACE = uuid.UUID("3b0f6f8e-2c51-5d7a-8a43-0c9e51f7d2a6")


class Series(NamedTuple):
    """One tested series: kind (`friction`, `dropoff`, `entries`, `volume`), scope, name.
    A tuple, not a dataclass: it keys every baseline lookup, and tuples hash in C."""

    kind: str
    scope: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.scope} {self.name}"


@dataclass(frozen=True, slots=True)
class FixedThreshold:
    """A hand-set limit for the series matching `kind`, `scope` and `name` (`*` patterns):
    a rate above `max_rate` (with at least the detector's `min_exposures` of volume) for
    `friction` and `dropoff`, or a count below `min_count` for `entries` and `volume`."""

    kind: str
    scope: str = "*"
    name: str = "*"
    max_rate: float | None = None
    min_count: float | None = None
    severity: Severity = "warning"

    def matches(self, series: Series) -> bool:
        return (
            self.kind == series.kind
            and fnmatchcase(series.scope, self.scope)
            and fnmatchcase(series.name, self.name)
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """What a person needs to act on one series: what, how much against what was expected,
    how sure, and when. `windows` is 2 when the evidence is this window and the one before."""

    alert_id: str
    kind: AlertKind
    rule: Rule
    series: Series
    window_start: datetime  # of the first window in the evidence
    window_end: datetime
    window_version: int  # of the window that decided it; 0 for a window that had no data
    windows: int
    observed: int  # signals, drop-offs, entries or events
    volume: int  # exposures or journeys leaving the stage; the count itself for collapses
    expected: float  # the count the baseline expected for that volume (NaN: no baseline yet)
    p_value: float | None  # None for a fixed threshold
    severity: Severity
    explanation: str
    retracted: bool = False


def alert_id(rule: str, series: Series, decided_start_ms: int) -> str:
    """Deterministic: the same rule, series and deciding window always give the same id."""
    name = f"{rule}|{series.kind}|{series.scope}|{series.name}|{decided_start_ms}"
    return str(uuid.uuid5(ALERT_NAMESPACE, name))


def explain(
    series: Series,
    *,
    hits: int,
    trials: int,
    rate_series: bool,
    expected: float,
    p: float | None,
    begin: datetime,
    end: datetime,
    version: int,
) -> str:
    """One line a person can act on."""
    span = f"{begin:%Y-%m-%d %H:%M}-{end:%H:%M} UTC" + (f" (v{version})" if version > 1 else "")
    chance = f", p={p:.1e}" if p is not None else ""
    volume = f" in {trials}" if rate_series else ""
    share = f" ({hits / trials:.1%})" if rate_series and trials else ""
    if math.isnan(expected):
        return (
            f"{series}: {hits}{volume}{share}, past its fixed threshold (no baseline yet), {span}"
        )
    expect = f"{expected:.1f}"
    if rate_series and trials:
        expect += f" ({expected / trials:.1%})"
    return f"{series}: {hits}{volume}{share} vs {expect} expected{chance}, {span}"


def retracted(alert: Alert, version: int) -> Alert:
    """The same alert (same id), withdrawn by a later version of its window."""
    return replace(
        alert,
        window_version=version,
        retracted=True,
        explanation=f"retracted by late events: {alert.explanation}",
    )
