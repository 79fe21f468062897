"""Builders shared by the alerting tests (no tests here): detector alerts and closed
windows by window index. Named `test_alert_*` to sit with the tests it serves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stream_processors.friction.alerts.core.incident_records import Incident
from stream_processors.friction.alerts.core.incidents import IncidentConfig, Incidents
from stream_processors.friction.core.rules import Alert, Rule, Series, Severity, alert_id

SIZE = 5 * 60_000
T0 = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp() * 1000)  # a Monday, 00:00 UTC
CHECKOUT = Series("friction", "web:/checkout", "payment_declined")
CART = Series("friction", "web:/cart", "error")


def at(index: int) -> datetime:
    """The start of window `index`."""
    return datetime.fromtimestamp((T0 + index * SIZE) / 1000, UTC)


def make_alert(
    index: int,
    series: Series = CHECKOUT,
    *,
    rule: Rule = "baseline",
    severity: Severity = "warning",
    observed: int = 30,
    windows: int = 1,
    retracted: bool = False,
) -> Alert:
    """What the detector sends for window `index` of `series`."""
    start = T0 + index * SIZE
    return Alert(
        alert_id=alert_id(rule, series, start),
        kind="friction_spike",
        rule=rule,
        series=series,
        window_start=at(index - windows + 1),
        window_end=at(index + 1),
        window_version=1,
        windows=windows,
        observed=observed,
        volume=100,
        expected=3.0 if rule == "baseline" else float("nan"),
        p_value=1e-9 if rule == "baseline" else None,
        severity=severity,
        explanation=f"{series}: {observed} in 100 (window {index})",
        retracted=retracted,
    )


def closed(first: int, last: int | None = None) -> range:
    """Window starts `first..last` (inclusive), as `Advance.closed` says them."""
    end = first if last is None else last
    return range(T0 + first * SIZE, T0 + (end + 1) * SIZE, SIZE)


def tracker(resolve_after: int = 3, revisable_for: timedelta = timedelta(days=1)) -> Incidents:
    return Incidents(
        IncidentConfig(
            window=timedelta(milliseconds=SIZE),
            resolve_after=resolve_after,
            revisable_for=revisable_for,
        )
    )


def run(incidents: Incidents, last: int, alerting: dict[int, list[Alert]]) -> list[Incident]:
    """Close windows 0..last one at a time, with the alerts of each; all records out."""
    out: list[Incident] = []
    for index in range(last + 1):
        out += incidents.process(alerting.get(index, []), closed(index))
    return out
