"""Incidents: the detector's per-window alerts turned into one alert per episode per series
(docs/concepts.md §6).

The detector (`detector.py`) decides every known series on every closed window and emits an
`Alert` for each window that alerts (one per rule), again under the same id when a late
version of the window changes it, and `retracted` when it no longer holds. People want one
page per problem, so:

- **Firing.** An alert for a series with no incident in reach opens one: a record with
  status `firing`, version 1, and a deterministic id (UUIDv5 of the series and the start of
  its first window, `alert_incident_records.incident_id`). Later alerts of the same episode
  are evidence: the record is published again (version + 1) only when it changes.
- **Resolved** after `resolve_after` consecutive closed windows without an alert for the
  series. Every closed window counts: the detector tests every series it knows on every
  closed window, empty ones included, so "no alert" is the detector's "normal" (a series too
  quiet to test is normal too). `resolved_at` is the end of the last of those windows.
- **Re-fire** only after resolution: an alert more than `resolve_after` windows after the
  incident's last alerting window opens a new incident with a new id.
- **Reach.** An alert joins the incident whose alerting windows are within `resolve_after`
  windows of its own (before or after), the latest such incident if two are. So a late
  alert extends an incident backwards, or reopens a resolved one whose resolution it proves
  premature (if no later incident exists: there is never more than one firing incident per
  series). Incidents are not split or merged after the fact.
- **Late.** An incident opened by an alert on a window that had already closed (re-emitted:
  a late channel's export landing hours later, or late events) is marked `late`, with
  `found_late_by`: how far the watermark was past the end of its first window then. Its
  `started_at` stays the event time of its first window.
- **Held series** (`held`: a late channel's counts, which the detector judges `held_for`
  after their windows close) are measured against the closed windows less that wait: an
  alert on the window just due is on time, and its incident fires while they stay down.
- **Retracted.** A retracted alert removes its evidence. An incident left without any is
  withdrawn (status `retracted`, a new version); otherwise it stays, republished if the
  record changed.

A window's evidence is revisable for `revisable_for` (the detector's): older evidence is
folded into a summary, and incidents no alert can reach any more are forgotten, so state
stays small however long an incident lasts.

Call it once per watermark advance, after the detector, and persist `snapshot()` with the
stage's state:

    alerts = detector.process(advance)
    for incident in incidents.process(alerts, advance.closed): ...  # route, send

Pure: time is the windows' event time; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, cast

from stream_processors.friction.alerts.core.incident_records import (
    SEVERITY_RANK,
    Evidence,
    Incident,
    Status,
    epoch_ms,
    incident_id,
    utc,
)
from stream_processors.friction.core.rules import Alert, AlertKind, Series, Severity

SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class IncidentConfig:
    window: timedelta = timedelta(minutes=5)  # the detector's window
    resolve_after: int = 3  # consecutive normal closed windows
    revisable_for: timedelta = timedelta(days=1)  # the detector's `revisable_for`
    # Series the detector judges `held_for` after their windows close (a late channel's
    # counts, `detector.holds_counts`): their windows count as closed that much later.
    held: Callable[[Series], bool] | None = None
    held_for: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.window <= timedelta(0) or self.resolve_after < 1:
            raise ValueError("window must be positive and resolve_after at least 1")
        if self.revisable_for < timedelta(0):
            raise ValueError("revisable_for must not be negative")


@dataclass(frozen=True, slots=True)
class _Settled:
    """Evidence too old to be revised, summed up."""

    windows: int
    first_ms: int
    min_decided_ms: int
    severity: Severity
    latest: Evidence

    def to_json(self) -> list[Any]:
        return [
            self.windows,
            self.first_ms,
            self.min_decided_ms,
            self.severity,
            self.latest.to_json(),
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> _Settled:
        windows, first, low, severity, latest = row
        last = Evidence.from_json(latest)
        return cls(int(windows), int(first), int(low), _max_severity([severity]), last)


@dataclass(slots=True)
class _Episode:
    """One incident's state: its live evidence and the last record published."""

    incident_id: str
    series: Series
    kind: AlertKind
    evidence: dict[tuple[int, str], Evidence] = field(default_factory=dict)
    settled: _Settled | None = None
    record: Incident | None = None
    found_late_by: int | None = None  # seconds; None: raised when its window closed

    def live(self) -> bool:
        return bool(self.evidence) or self.settled is not None

    def span(self) -> tuple[int, int]:
        """The first and last alerting window starts (of a live episode)."""
        starts = [e.decided_ms for e in self.evidence.values()]
        if self.settled is not None:
            starts += [self.settled.min_decided_ms, self.settled.latest.decided_ms]
        return min(starts), max(starts)


class Incidents:
    """The lifecycle above, for every series; feed it every advance's alerts in order."""

    def __init__(self, config: IncidentConfig | None = None) -> None:
        self.config = config or IncidentConfig()
        self._size = int(self.config.window.total_seconds() * 1000)
        self._reach = self.config.resolve_after * self._size
        self._revisable = int(self.config.revisable_for.total_seconds() * 1000)
        self._held_ms = int(self.config.held_for.total_seconds() * 1000)
        self._by_series: dict[Series, list[_Episode]] = {}
        self._by_id: dict[str, _Episode] = {}
        self._firing: dict[str, _Episode] = {}
        self._front: int | None = None  # the latest closed window start
        self._late_at: int | None = None  # in a step of late alerts: the newest closed start

    def process(self, alerts: Iterable[Alert], closed: Iterable[int]) -> list[Incident]:
        """Apply one advance: the detector's alerts and the window starts it closed
        (`Advance.closed`). Returns every record that changed, in order; a new incident's
        first record is always `firing`, even when it is resolved in the same call."""
        steps: dict[int, list[Alert]] = {}
        for alert in alerts:
            steps.setdefault(epoch_ms(alert.window_end) - self._size, []).append(alert)
        closed_starts = set(closed)
        if not steps and not closed_starts:
            return []  # most advances close nothing: keep them free
        front_before = self._front
        out: list[Incident] = []
        # The watermark of this advance: the end of the newest window closed by now.
        newest = max(closed_starts, default=self._front)
        if newest is not None and self._front is not None:
            newest = max(newest, self._front)
        for start in sorted(steps.keys() | closed_starts):
            if start in closed_starts and (self._front is None or start > self._front):
                self._front = start
            # Alerts on a window this advance did not close: it closed before, and changed.
            self._late_at = None if start in closed_starts or newest is None else newest
            touched = dict(self._firing)
            for alert in steps.get(start, ()):
                episode = self._apply(alert)
                if episode is not None:
                    touched[episode.incident_id] = episode
            # By id, not by the order the detector said them: the records' order decides how
            # they are batched into alerts (`AlertGroups`), and must not follow arrival order.
            for episode in sorted(touched.values(), key=_by_id):
                if episode.record is None:  # opened in this step
                    if not episode.live():  # and withdrawn in it too
                        self._forget(episode)
                        continue
                    self._publish(episode, out, status="firing")
                self._publish(episode, out)
        if self._front != front_before:
            self._fold_and_forget()
        return out

    @property
    def front_ms(self) -> int | None:
        return self._front

    def firing(self) -> list[Incident]:
        """The records of the incidents firing now."""
        return [e.record for e in self._firing.values() if e.record is not None]

    def records(self) -> list[Incident]:
        """The last record of every incident still remembered."""
        return [e.record for e in self._by_id.values() if e.record is not None]

    # -- one alert ----------------------------------------------------------------------------

    def _apply(self, alert: Alert) -> _Episode | None:
        evidence = Evidence.of(alert, self._size)
        if self._front is not None and evidence.decided_ms < self._front - self._revisable:
            return None  # older than the detector revises: a stray, not evidence
        if alert.retracted:
            holder = self._holder(alert.series, evidence.key)
            if holder is not None:
                del holder.evidence[evidence.key]
            return holder
        episode = self._joinable(alert.series, evidence.decided_ms)
        if episode is None:
            return self._open(alert, evidence)
        episode.evidence[evidence.key] = evidence
        return episode

    def _holder(self, series: Series, key: tuple[int, str]) -> _Episode | None:
        return next((e for e in self._by_series.get(series, ()) if key in e.evidence), None)

    def _joinable(self, series: Series, decided_ms: int) -> _Episode | None:
        best: tuple[int, _Episode] | None = None
        for episode in self._by_series.get(series, ()):
            if not episode.live():
                continue
            low, high = episode.span()
            reached = low - self._reach <= decided_ms <= high + self._reach
            if reached and (best is None or low > best[0]):
                best = (low, episode)
        return best[1] if best is not None else None

    def _open(self, alert: Alert, evidence: Evidence) -> _Episode:
        """A new incident (published, as firing, at the end of the step), or one retracted
        earlier that alerts anew on the same first window: its versions go on, so a reader
        keeping the latest gets this one."""
        iid = incident_id(alert.series, evidence.first_ms)
        episode = self._by_id.get(iid)
        if episode is None:
            episode = _Episode(iid, alert.series, alert.kind)
            late_at = self._late_at
            if late_at is not None:
                late_at -= self._lag(alert.series)
            if late_at is not None and late_at > evidence.decided_ms:
                late_ms = max(0, late_at - evidence.first_ms)  # both ends: + one window
                episode.found_late_by = late_ms // 1000
            self._by_id[iid] = episode
            self._by_series.setdefault(alert.series, []).append(episode)
        episode.evidence[evidence.key] = evidence
        return episode

    # -- records ------------------------------------------------------------------------------

    def _publish(
        self, episode: _Episode, out: list[Incident], status: Status | None = None
    ) -> None:
        record = self._record(episode, status)
        if record.same_as(episode.record):
            return
        previous = episode.record.version if episode.record is not None else 0
        record = replace(record, version=previous + 1)
        episode.record = record
        if record.status == "firing":
            self._firing[episode.incident_id] = episode
        else:
            self._firing.pop(episode.incident_id, None)
        out.append(record)

    def _record(self, episode: _Episode, status: Status | None) -> Incident:
        if not episode.live():
            before = episode.record
            assert before is not None  # an episode is published when it opens
            if before.status == "retracted":
                return before
            text = f"retracted by late events: {before.explanation}"
            return replace(before, status="retracted", resolved_at=None, explanation=text)
        items = list(episode.evidence.values())
        settled = episode.settled
        candidates = items + ([settled.latest] if settled is not None else [])
        latest = max(candidates, key=Evidence.rank)
        last = latest.decided_ms
        if status is None:
            front = self._front
            still = front is None or front - self._lag(episode.series) - last < self._reach
            status = "firing" if still else "resolved"
        return Incident(
            incident_id=episode.incident_id,
            version=0,
            status=status,
            series=episode.series,
            kind=episode.kind,
            started_at=utc(min([e.first_ms for e in items] + _first(settled))),
            last_window_start=utc(last),
            last_window_end=utc(last + self._size),
            windows=len({e.decided_ms for e in items}) + (settled.windows if settled else 0),
            observed=latest.observed,
            expected=latest.expected,
            volume=latest.volume,
            p_value=latest.p_value,
            severity=_max_severity([e.severity for e in candidates] + _severity(settled)),
            explanation=latest.explanation,
            last_alert_id=latest.alert_id,
            resolved_at=utc(last + self._reach + self._size) if status == "resolved" else None,
            late=episode.found_late_by is not None,
            found_late_by=episode.found_late_by or 0,
        )

    def _lag(self, series: Series) -> int:
        """How far behind the closed windows `series` is judged (ms)."""
        held = self.config.held
        return self._held_ms if held is not None and held(series) else 0

    # -- memory -------------------------------------------------------------------------------

    def _fold_and_forget(self) -> None:
        if self._front is None:
            return
        horizon = self._front - self._revisable
        for episode in list(self._by_id.values()):
            old = [e for e in episode.evidence.values() if e.decided_ms < horizon]
            if old:
                episode.settled = _fold(episode.settled, old)
                for evidence in old:
                    del episode.evidence[evidence.key]
            record = episode.record
            if episode.incident_id in self._firing or record is None:
                continue
            # No alert the detector can still send reaches it: done with it.
            if epoch_ms(record.last_window_start) + self._reach < horizon:
                self._forget(episode)

    def _forget(self, episode: _Episode) -> None:
        del self._by_id[episode.incident_id]
        kept = [e for e in self._by_series[episode.series] if e is not episode]
        if kept:
            self._by_series[episode.series] = kept
        else:
            del self._by_series[episode.series]

    # -- snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """All state as JSON-ready data (no NaN, no datetimes), for the stage's changelog."""
        return {
            "v": SNAPSHOT_VERSION,
            "front_ms": self._front,
            "incidents": [_dump(e) for e in self._by_id.values()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace all state by a `snapshot()`: firing incidents stay firing (and are not
        announced again), and replayed alerts change nothing."""
        if data.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"incident snapshot version {data.get('v')!r} is not supported")
        self._by_series.clear()
        self._by_id.clear()
        self._firing.clear()
        front = data.get("front_ms")
        self._front = None if front is None else int(front)
        for row in data["incidents"]:
            episode = _load(row)
            self._by_id[episode.incident_id] = episode
            self._by_series.setdefault(episode.series, []).append(episode)
            if episode.record is not None and episode.record.status == "firing":
                self._firing[episode.incident_id] = episode


def _fold(settled: _Settled | None, old: list[Evidence]) -> _Settled:
    items = old + ([settled.latest] if settled is not None else [])
    return _Settled(
        windows=len({e.decided_ms for e in old}) + (settled.windows if settled else 0),
        first_ms=min([e.first_ms for e in old] + _first(settled)),
        min_decided_ms=min(
            [e.decided_ms for e in old] + ([settled.min_decided_ms] if settled else [])
        ),
        severity=_max_severity([e.severity for e in items] + _severity(settled)),
        latest=max(items, key=Evidence.rank),
    )


def _first(settled: _Settled | None) -> list[int]:
    return [settled.first_ms] if settled is not None else []


def _severity(settled: _Settled | None) -> list[str]:
    return [settled.severity] if settled is not None else []


def _max_severity(values: Iterable[str]) -> Severity:
    return cast(Severity, max(values, key=SEVERITY_RANK.__getitem__))


def _dump(episode: _Episode) -> dict[str, Any]:
    return {
        "id": episode.incident_id,
        "series": list(episode.series),
        "kind": episode.kind,
        "evidence": [e.to_json() for _, e in sorted(episode.evidence.items())],
        "settled": episode.settled.to_json() if episode.settled is not None else None,
        "record": episode.record.to_dict() if episode.record is not None else None,
    }


def _load(row: dict[str, Any]) -> _Episode:
    kind, scope, name = row["series"]
    evidence = [Evidence.from_json(e) for e in row["evidence"]]
    record = Incident.from_dict(row["record"]) if row["record"] is not None else None
    return _Episode(
        incident_id=str(row["id"]),
        series=Series(str(kind), str(scope), str(name)),
        kind=cast(AlertKind, str(row["kind"])),
        evidence={e.key: e for e in evidence},
        settled=_Settled.from_json(row["settled"]) if row["settled"] is not None else None,
        record=record,
        found_late_by=record.found_late_by if record is not None and record.late else None,
    )


def _by_id(episode: _Episode) -> str:
    return episode.incident_id
