"""Scoring the detection bench from what the friction stage published, apart from the
detector's code: the alert rows (as on the `alerts` topic) and the global windows (as on
`friction-windows`), read as plain JSON.

- An alert **finds** the incident when a firing row of it, published between the
  incident's start and `found_by` after its end (or after the late export landed), names a
  series matching the scenario's `Expect` (kind and scope patterns) as its headline or as
  one it groups, and that alert did not name it before the incident began (a new series
  may join an alert already firing). The **delay** is the simulated clock when that row was
  published minus the incident's start (the clock is event time: deliveries run 0-90 s
  behind it, the watermark 2 minutes).
- A **false alert** is any other alert that first fired in the scored period, unless all
  its series are the incident's consequences and it fired while the incident lasted (up to
  `found_by`). Retracted or not, it paged once.
- **Tested series** are the series a detector can alert on (each friction signal at a
  scope, drop-off share and entries per stage scope, events per source) with at least
  `MIN_VOLUME` exposures, journeys leaving the stage, entries or events per window on
  average over the scored period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from schemas.friction import POSITIVE_SIGNALS

from .detection_cores import Published
from .detection_scenarios import Scenario

MIN_VOLUME = 1.0
_POSITIVE = frozenset(str(s.value) for s in POSITIVE_SIGNALS)


@dataclass(frozen=True)
class Fired:
    """One alert's first firing row, and the series it named."""

    at: datetime
    alert_id: str
    series: tuple[tuple[str, str, str], ...]  # (kind, series kind, scope), headline first
    explanation: str


@dataclass
class Outcome:
    detected: Fired | None  # the first alert row that named the incident's series
    delay: timedelta | None
    false_alerts: list[Fired]
    symptoms: list[Fired]
    tested_series: int
    scored_hours: float
    named: tuple[str, str, str] | None = None  # (kind, series kind, scope) it named

    @property
    def found(self) -> str:
        """What found it: the series and kind, and the alert's headline when another."""
        if self.detected is None or self.named is None:
            return "no"
        kind, series_kind, scope = self.named
        text = f"yes: {series_kind} {scope} {kind}"
        head = self.detected.series[0]
        if head != self.named:
            text += f" (in the alert on {head[1]} {head[2]})"
        return text

    @property
    def false_per_day_per_100(self) -> float:
        if not self.tested_series or not self.scored_hours:
            return 0.0
        return len(self.false_alerts) / (self.scored_hours / 24) / (self.tested_series / 100)


def _fired(p: Published) -> Fired:
    row = p.row
    series = [(str(row["kind"]), str(row["series"]["kind"]), str(row["series"]["scope"]))]
    for related in row.get("related") or ():
        s = related["series"]
        series.append((str(related["kind"]), str(s["kind"]), str(s["scope"])))
    return Fired(p.at, str(row["incident_id"]), tuple(series), str(row.get("explanation", "")))


def first_firing(published: Iterable[Published]) -> list[Fired]:
    """Per alert id, the first row published with status `firing`, in publishing order."""
    seen: set[str] = set()
    out = []
    for p in published:
        alert = str(p.row["incident_id"])
        if p.row.get("status") != "firing" or alert in seen:
            continue
        seen.add(alert)
        out.append(_fired(p))
    return out


def first_finding(
    scenario: Scenario, published: Iterable[Published], window: tuple[datetime, datetime]
) -> Fired | None:
    """The first firing row in `window` naming a matching series that its alert did not
    name before the incident began. One problem is one alert: a new series may join an
    alert already firing (a source gone quiet, say) instead of opening its own."""
    before: dict[str, set[tuple[str, str, str]]] = {}
    for p in published:
        if p.row.get("status") != "firing" or p.at > window[1]:
            continue
        fired = _fired(p)
        matching = {s for s in fired.series if _matches(scenario, s)}
        if p.at < window[0]:
            before.setdefault(fired.alert_id, set()).update(matching)
        elif matching - before.get(fired.alert_id, set()):
            return fired
    return None


def score(
    scenario: Scenario, scored_from: datetime, published: list[Published], volumes: VolumeTally
) -> Outcome:
    scored_end = scored_from + timedelta(days=scenario.scored_days)
    fired = [f for f in first_firing(published) if scored_from <= f.at < scored_end]
    symptoms: list[Fired] = []
    false: list[Fired] = []
    window = _finding_window(scenario, scored_from)
    detected = None if window is None else first_finding(scenario, published, window)
    for f in fired:
        during = window is not None and window[0] <= f.at <= window[1]
        if during and (_finds(scenario, f) or _all_consequences(scenario, f)):
            if f.alert_id != (detected.alert_id if detected else None):
                symptoms.append(f)
        else:
            false.append(f)
    delay = None
    if detected is not None and scenario.incident is not None:
        delay = detected.at - scenario.incident.window(scored_from)[0]
    hours = (scored_end - scored_from) / timedelta(hours=1)
    named = None
    if detected is not None:
        named = next(x for x in detected.series if _matches(scenario, x))
    return Outcome(detected, delay, false, symptoms, volumes.tested(), hours, named)


def _finding_window(scenario: Scenario, scored_from: datetime) -> tuple[datetime, datetime] | None:
    incident = scenario.incident
    if incident is None:
        return None
    begin, end = incident.window(scored_from)
    if incident.held_from is not None:
        begin = min(begin, scored_from + timedelta(minutes=incident.held_from))
    if incident.lands is not None:
        end = max(end, scored_from + timedelta(minutes=incident.lands))
    return begin, end + scenario.found_by


def _finds(scenario: Scenario, fired: Fired) -> bool:
    return any(_matches(scenario, s) for s in fired.series)


def _matches(scenario: Scenario, series: tuple[str, str, str]) -> bool:
    expect = scenario.expect
    if expect is None:
        return False
    kind, _series_kind, scope = series
    return any(fnmatchcase(kind, k) for k in expect.kinds) and any(
        fnmatchcase(scope, s) for s in expect.scopes
    )


def _all_consequences(scenario: Scenario, fired: Fired) -> bool:
    patterns = scenario.consequences
    return all(any(fnmatchcase(scope, p) for p in patterns) for _k, _sk, scope in fired.series)


@dataclass
class VolumeTally:
    """Volume per series over the scored period, from the global window rows (a later
    version of a window replaces the earlier one)."""

    scored_from: datetime
    scored_end: datetime
    last: dict[tuple[str, str, float], dict[str, int]] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        start = float(row["window_start"])
        if not self.scored_from <= datetime.fromtimestamp(start, UTC) < self.scored_end:
            return
        self.last[(str(row["series_kind"]), str(row["scope"]), start)] = row["counts"]

    def volumes(self) -> dict[tuple[str, str, str], int]:
        out: dict[tuple[str, str, str], int] = {}
        for (kind, scope, _start), counts in self.last.items():
            for series, amount in series_volumes(kind, scope, counts).items():
                out[series] = out.get(series, 0) + amount
        return out

    def tested(self) -> int:
        windows = (self.scored_end - self.scored_from) / timedelta(minutes=5)
        return sum(1 for v in self.volumes().values() if v / windows >= MIN_VOLUME)

    def series(self) -> int:
        return len(self.volumes())


def series_volumes(
    kind: str, scope: str, counts: dict[str, int]
) -> dict[tuple[str, str, str], int]:
    """The alertable series a window's counters make, each with its volume."""
    if kind == "friction":
        exposures = counts.get("exposures", 0)
        names = [n for n in counts if n != "exposures" and n not in _POSITIVE]
        return {("friction", scope, n): exposures for n in names}
    if kind == "stage":
        leaving = counts.get("dropped", 0) + counts.get("progressed", 0)
        return {
            ("dropoff", scope, "dropped"): leaving,
            ("entries", scope, "entered"): counts.get("entered", 0),
        }
    if kind == "volume":
        return {("volume", scope, "events"): counts.get("events", 0)}
    return {}
