"""The incident lifecycle: one incident per episode per series, firing -> resolved after
quiet windows, re-fire with a new id, retractions withdraw what rested on them alone, late
alerts extend or reopen, and a snapshot survives a restart without firing twice."""

from __future__ import annotations

import json
import math
import random
from datetime import timedelta

import pytest

from stream_processors.friction.alerts.core.incident_records import Incident, incident_id
from stream_processors.friction.alerts.core.incidents import IncidentConfig, Incidents
from stream_processors.friction.core.detector import Detector
from stream_processors.friction.core.rules import Alert
from stream_processors.friction.core.windows import TumblingWindows
from tests.unit.friction.alerts.builders import (
    CART,
    CHECKOUT,
    SIZE,
    T0,
    at,
    closed,
    make_alert,
    run,
    tracker,
)


def statuses(records: list[Incident]) -> list[tuple[str, int, str]]:
    return [(r.incident_id[:8], r.version, r.status) for r in records]


def test_a_run_of_alerting_windows_is_one_incident_that_resolves() -> None:
    incidents = tracker(resolve_after=3)
    records = run(incidents, 15, {i: [make_alert(i, observed=30 + i)] for i in (10, 11, 12)})
    assert [(r.version, r.status, r.windows) for r in records] == [
        (1, "firing", 1),
        (2, "firing", 2),
        (3, "firing", 3),
        (4, "resolved", 3),
    ]
    assert len({r.incident_id for r in records}) == 1
    last = records[-1]
    assert last.incident_id == incident_id(CHECKOUT, T0 + 10 * SIZE)
    assert last.started_at == at(10)
    assert (last.last_window_start, last.last_window_end) == (at(12), at(13))
    assert last.observed == 42 and last.volume == 100 and last.expected == 3.0
    # resolved by windows 13, 14 and 15: at the end of window 15
    assert last.resolved_at == at(16)
    assert incidents.firing() == []


def test_it_does_not_resolve_before_enough_normal_windows() -> None:
    incidents = tracker(resolve_after=3)
    records = run(incidents, 12, {10: [make_alert(10)]})  # quiet: 11 and 12
    assert [r.status for r in records] == ["firing"]
    assert [r.incident_id for r in incidents.firing()] == [records[0].incident_id]


@pytest.mark.parametrize(
    ("second", "incidents_expected"),
    [(13, 1), (14, 2)],  # windows 11-12 quiet: same episode; 11-13 quiet: resolved first
)
def test_refire_only_after_resolution(second: int, incidents_expected: int) -> None:
    incidents = tracker(resolve_after=3)
    records = run(incidents, 20, {10: [make_alert(10)], second: [make_alert(second)]})
    ids = list(dict.fromkeys(r.incident_id for r in records))
    assert len(ids) == incidents_expected
    if incidents_expected == 2:
        assert ids[1] == incident_id(CHECKOUT, T0 + 14 * SIZE)
        assert statuses(records)[:3] == [
            (ids[0][:8], 1, "firing"),
            (ids[0][:8], 2, "resolved"),
            (ids[1][:8], 1, "firing"),
        ]
    assert all(r.status == "resolved" for r in incidents.records())


def test_series_are_independent() -> None:
    incidents = tracker()
    records = run(incidents, 11, {10: [make_alert(10), make_alert(10, CART)]})
    assert {r.series for r in records} == {CHECKOUT, CART}
    assert len(incidents.firing()) == 2


def test_severity_is_the_highest_seen_and_the_numbers_the_latest() -> None:
    incidents = tracker()
    run(
        incidents, 12, {10: [make_alert(10, severity="critical")], 11: [make_alert(11, observed=7)]}
    )
    (record,) = incidents.firing()
    assert (record.severity, record.observed, record.windows) == ("critical", 7, 2)


def test_two_rules_in_one_window_make_one_record() -> None:
    incidents = tracker()
    both = [make_alert(10, rule="threshold", observed=9), make_alert(10)]
    records = incidents.process(both, closed(10))
    assert [(r.version, r.windows) for r in records] == [(1, 1)]
    # the baseline rule speaks for the window: it has an expectation
    assert (records[0].expected, records[0].observed) == (3.0, 30)


def test_the_more_severe_rule_speaks_for_its_window() -> None:
    incidents = tracker()
    both = [make_alert(10, rule="threshold", severity="critical", observed=9), make_alert(10)]
    (record,) = incidents.process(both, closed(10))
    assert (record.severity, record.observed, record.expected) == ("critical", 9, None)


def test_a_pair_alert_starts_the_incident_at_its_first_window() -> None:
    incidents = tracker()
    (record,) = incidents.process([make_alert(10, windows=2)], closed(10))
    assert record.started_at == at(9)
    assert record.incident_id == incident_id(CHECKOUT, T0 + 9 * SIZE)


def test_nothing_changes_nothing_is_published() -> None:
    incidents = tracker()
    first = incidents.process([make_alert(10)], closed(10))
    assert incidents.process([make_alert(10)], closed(10)) == []  # a replay
    assert incidents.process([], closed(11)) == []  # a quiet window, not yet resolving
    assert len(first) == 1


# -- retractions --------------------------------------------------------------------------------


def test_an_incident_resting_on_one_window_is_withdrawn_with_it() -> None:
    incidents = tracker()
    (fired,) = incidents.process([make_alert(10)], closed(10))
    (withdrawn,) = incidents.process([make_alert(10, retracted=True)], closed(11))
    assert withdrawn.incident_id == fired.incident_id
    assert (withdrawn.version, withdrawn.status) == (2, "retracted")
    assert withdrawn.explanation.startswith("retracted by late events: ")
    assert incidents.firing() == []
    # quiet windows later: still nothing to say about it
    assert run_quiet(incidents, 12, 20) == []


def test_an_incident_with_other_evidence_stays() -> None:
    incidents = tracker()
    run(incidents, 11, {10: [make_alert(10)], 11: [make_alert(11, observed=50)]})
    (updated,) = incidents.process([make_alert(11, observed=50, retracted=True)], closed(12))
    assert (updated.status, updated.version, updated.windows) == ("firing", 3, 1)
    assert updated.last_window_start == at(10) and updated.observed == 30


def test_withdrawing_the_last_window_can_resolve_at_once() -> None:
    incidents = tracker(resolve_after=3)
    run(incidents, 13, {10: [make_alert(10)], 13: [make_alert(13)]})
    # three quiet windows after 10 have passed: without 13 it is over
    (record,) = incidents.process([make_alert(13, retracted=True)], closed(14))
    assert (record.status, record.resolved_at) == ("resolved", at(14))


def test_a_retraction_of_unknown_evidence_is_ignored() -> None:
    incidents = tracker()
    assert incidents.process([make_alert(10, retracted=True)], closed(10)) == []
    assert incidents.records() == []


def test_alerting_again_after_a_withdrawal_goes_on_with_the_versions() -> None:
    incidents = tracker()
    incidents.process([make_alert(10)], closed(10))
    incidents.process([make_alert(10, retracted=True)], closed(11))
    (again,) = incidents.process([make_alert(10)], closed(12))  # a later version alerts again
    assert (again.version, again.status) == (3, "firing")


# -- late alerts --------------------------------------------------------------------------------


def test_a_late_alert_reopens_a_resolution_it_proves_premature() -> None:
    incidents = tracker(resolve_after=3)
    records = run(incidents, 13, {10: [make_alert(10)]})
    assert records[-1].status == "resolved"
    (reopened,) = incidents.process([make_alert(12)], closed(14))
    assert (reopened.incident_id, reopened.version) == (records[0].incident_id, 3)
    assert (reopened.status, reopened.resolved_at, reopened.windows) == ("firing", None, 2)


def test_a_late_alert_that_changes_nothing_of_the_status_updates_the_record() -> None:
    incidents = tracker(resolve_after=3)
    run(incidents, 20, {10: [make_alert(10)]})
    (record,) = incidents.process([make_alert(12)], closed(21))
    assert (record.status, record.resolved_at, record.windows) == ("resolved", at(16), 2)


def test_a_late_alert_between_two_incidents_joins_the_later() -> None:
    incidents = tracker(resolve_after=3)
    records = run(incidents, 14, {10: [make_alert(10)], 14: [make_alert(14)]})
    first, second = dict.fromkeys(r.incident_id for r in records)
    # window 12 is within reach of both; reopening the first would make two firing
    (record,) = incidents.process([make_alert(12)], [])  # a revision: no window closed
    assert record.incident_id == second and record.started_at == at(12)
    assert [r.incident_id for r in incidents.firing()] == [second]
    assert {r.incident_id: r.status for r in incidents.records()}[first] == "resolved"


def test_a_late_alert_out_of_reach_fires_and_resolves_in_the_past() -> None:
    incidents = tracker(resolve_after=3)
    run(incidents, 20, {19: [make_alert(19)]})
    records = incidents.process([make_alert(10)], closed(21))
    assert [r.status for r in records] == ["firing", "resolved"]
    assert records[1].resolved_at == at(14)
    assert len(incidents.firing()) == 1  # the one of window 19 only


# -- snapshot and restart -----------------------------------------------------------------------


def test_a_restart_neither_loses_nor_refires_an_incident() -> None:
    before = tracker(resolve_after=3)
    run(before, 11, {10: [make_alert(10)], 11: [make_alert(11)]})
    saved = json.loads(json.dumps(before.snapshot(), allow_nan=False))
    after = tracker(resolve_after=3)
    after.restore(saved)
    assert after.firing() == before.firing()
    # the stage re-delivers the last advance after a crash: nothing to announce again
    assert after.process([make_alert(11)], closed(11)) == []
    records = after.process([], closed(12, 14))
    assert [(r.version, r.status) for r in records] == [(3, "resolved")]


def test_snapshots_refuse_an_unknown_version() -> None:
    with pytest.raises(ValueError, match="version"):
        tracker().restore({"v": 99, "incidents": []})


def test_a_long_incident_keeps_its_state_small_and_its_count() -> None:
    incidents = tracker(resolve_after=3, revisable_for=timedelta(hours=1))
    days = 2 * 288
    alerting = {
        i: [make_alert(i, severity="critical" if i == 5 else "warning")] for i in range(days)
    }
    run(incidents, days - 1, alerting)
    (record,) = incidents.firing()
    assert (record.windows, record.severity, record.started_at) == (days, "critical", at(0))
    (row,) = incidents.snapshot()["incidents"]
    assert len(row["evidence"]) <= 13  # an hour of windows, the rest summed up
    restored = tracker(resolve_after=3, revisable_for=timedelta(hours=1))
    restored.restore(json.loads(json.dumps(incidents.snapshot())))
    (resolved,) = restored.process([], closed(days, days + 2))
    assert (resolved.windows, resolved.severity, resolved.status) == (days, "critical", "resolved")


def test_finished_incidents_are_forgotten_once_no_alert_can_reach_them() -> None:
    incidents = tracker(resolve_after=3, revisable_for=timedelta(hours=1))
    run(incidents, 20, {10: [make_alert(10)]})
    assert len(incidents.records()) == 1
    run_quiet(incidents, 21, 10 + 3 + 12)
    assert len(incidents.records()) == 1  # window 13 still within reach of a late alert
    run_quiet(incidents, 26, 30)
    assert incidents.records() == []


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="resolve_after"):
        IncidentConfig(resolve_after=0)


def run_quiet(incidents: Incidents, first: int, last: int) -> list[Incident]:
    return incidents.process([], closed(first, last))


# -- with the real detector ---------------------------------------------------------------------


def test_the_detectors_spike_is_one_incident_per_series() -> None:
    rng = random.Random(3)
    windows = TumblingWindows(timedelta(minutes=5), timedelta(minutes=30))
    detector = Detector()
    incidents = Incidents(IncidentConfig(resolve_after=3))
    key = ("friction", "web:/checkout")
    alerts: list[Alert] = []
    records: list[Incident] = []
    for index in range(130):
        spike = 100 <= index < 106
        errors = 25 if spike else poisson(rng, 3.0)
        at_ms = T0 + index * SIZE + 1_000
        windows.add(key, at_ms, ("exposures",), amount=100)
        if errors:
            windows.add(key, at_ms, ("error", "friction"), amount=errors)
        advance = windows.advance(T0 + (index + 1) * SIZE)
        found = detector.process(advance)
        alerts += found
        records += incidents.process(found, advance.closed)
    assert len(alerts) > 6  # one per window and series (the pair test adds more)
    by_series: dict[str, set[str]] = {}
    for record in records:
        by_series.setdefault(record.series.name, set()).add(record.incident_id)
    assert by_series.keys() == {"error", "friction"}
    assert all(len(ids) == 1 for ids in by_series.values())
    assert {r.status for r in incidents.records()} == {"resolved"}
    started = {r.started_at for r in incidents.records()}
    assert started <= {at(99), at(100)}  # the first window, or the pair that ended in it


def poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
