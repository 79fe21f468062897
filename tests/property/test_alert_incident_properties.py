"""Invariants of the incident lifecycle.

On time (alerts in window order, any number of windows closed per call): one incident per
contiguous firing run (windows at most `resolve_after` apart), with the run's first window,
count, last window and resolution; and a restart from a snapshot anywhere changes nothing.
With late alerts, retractions and replays in any order: never two firing incidents of one
series, a series is firing exactly while a live alert is within `resolve_after` windows of
the front, every incident was firing before it resolved or was withdrawn, versions go up by
one, and a replayed call publishes nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processors.friction.alerts.core.incident_records import Incident, incident_id
from stream_processors.friction.alerts.core.incidents import Incidents
from stream_processors.friction.core.rules import Alert, Series
from tests.unit.friction.alerts.builders import (
    CART,
    CHECKOUT,
    SIZE,
    T0,
    at,
    closed,
    make_alert,
    tracker,
)

SERIES = (CHECKOUT, CART)


def check_stream(records: Sequence[Incident]) -> None:
    """Versions 1, 2, 3... per incident, and the first one is `firing`."""
    seen: dict[str, int] = {}
    for record in records:
        before = seen.get(record.incident_id, 0)
        assert record.version == before + 1, record
        if before == 0:
            assert record.status == "firing", record
        seen[record.incident_id] = record.version


def one_firing_per_series(incidents: Incidents) -> None:
    series = [r.series for r in incidents.firing()]
    assert len(series) == len(set(series))


# -- on time ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnTime:
    resolve_after: int
    firing: dict[Series, list[bool]]  # per window index
    chunks: list[int]  # windows closed per call
    restart_at: int  # restart from a snapshot after this many calls

    @property
    def length(self) -> int:
        return len(next(iter(self.firing.values())))


@st.composite
def on_time(draw: st.DrawFn) -> OnTime:
    length = draw(st.integers(min_value=1, max_value=40))
    flags = st.lists(st.booleans(), min_size=length, max_size=length)
    count = draw(st.integers(min_value=1, max_value=2))
    return OnTime(
        resolve_after=draw(st.integers(min_value=1, max_value=4)),
        firing={s: draw(flags) for s in SERIES[:count]},
        chunks=draw(st.lists(st.integers(min_value=1, max_value=6), max_size=20)),
        restart_at=draw(st.integers(min_value=0, max_value=25)),
    )


def feed(case: OnTime, *, restart: bool) -> tuple[list[Incident], Incidents]:
    incidents = tracker(case.resolve_after)
    out: list[Incident] = []
    index, calls = 0, 0
    chunks = iter(case.chunks)
    while index < case.length:
        size = min(next(chunks, 1), case.length - index)
        last = index + size - 1
        alerts = [
            make_alert(i, s) for i in range(index, last + 1) for s, f in case.firing.items() if f[i]
        ]
        out += incidents.process(alerts, closed(index, last))
        one_firing_per_series(incidents)
        index, calls = last + 1, calls + 1
        if restart and calls == case.restart_at:
            saved = json.loads(json.dumps(incidents.snapshot(), allow_nan=False))
            incidents = tracker(case.resolve_after)
            incidents.restore(saved)
    return out, incidents


def runs(flags: list[bool], resolve_after: int) -> list[list[int]]:
    """Firing windows grouped into runs: a gap of `resolve_after` quiet windows ends one."""
    out: list[list[int]] = []
    for i in (i for i, f in enumerate(flags) if f):
        if out and i - out[-1][-1] <= resolve_after:
            out[-1].append(i)
        else:
            out.append([i])
    return out


@settings(max_examples=300, deadline=None)
@given(on_time())
def test_one_incident_per_contiguous_firing_run(case: OnTime) -> None:
    records, incidents = feed(case, restart=False)
    check_stream(records)
    latest = {r.incident_id: r for r in records}
    expected: dict[str, tuple[object, ...]] = {}
    for series, flags in case.firing.items():
        for run in runs(flags, case.resolve_after):
            over = case.length - 1 - run[-1] >= case.resolve_after
            resolved = at(run[-1] + case.resolve_after + 1) if over else None
            expected[incident_id(series, T0 + run[0] * SIZE)] = (
                series,
                "resolved" if over else "firing",
                at(run[0]),
                at(run[-1]),
                len(run),
                resolved,
            )
    got = {
        iid: (r.series, r.status, r.started_at, r.last_window_start, r.windows, r.resolved_at)
        for iid, r in latest.items()
    }
    assert got == expected
    assert len({r.incident_id for r in incidents.firing()}) == sum(
        1 for e in expected.values() if e[1] == "firing"
    )


@settings(max_examples=200, deadline=None)
@given(on_time())
def test_a_restart_from_a_snapshot_changes_nothing(case: OnTime) -> None:
    straight, _ = feed(case, restart=False)
    restarted, _ = feed(case, restart=True)
    assert restarted == straight


# -- late alerts, retractions, replays ---------------------------------------------------------

Op = tuple[str, int, int]  # (what, series index, window offset or pick)


@st.composite
def chaos(draw: st.DrawFn) -> tuple[int, list[Op]]:
    op = st.tuples(
        st.sampled_from(["close", "close", "late", "retract", "replay"]),
        st.integers(min_value=0, max_value=3),  # a series mask for close, else a series
        st.integers(min_value=0, max_value=12),
    )
    return draw(st.integers(min_value=1, max_value=4)), draw(st.lists(op, max_size=60))


@settings(max_examples=300, deadline=None)
@given(chaos())
def test_late_alerts_and_retractions_keep_the_invariants(case: tuple[int, list[Op]]) -> None:
    resolve_after, ops = case
    incidents = tracker(resolve_after)
    live: dict[tuple[Series, int], Alert] = {}
    front = -1
    records: list[Incident] = []
    last_call: tuple[list[Alert], range] = ([], range(0))
    for what, a, b in ops:
        alerts: list[Alert] = []
        windows = range(0)
        if what == "close":
            front += 1
            windows = closed(front)
            alerts = [make_alert(front, s) for n, s in enumerate(SERIES) if a >> n & 1]
        elif what == "late" and front >= 0:
            alerts = [make_alert(max(0, front - b), SERIES[a % 2], observed=b)]
        elif what == "retract" and live:
            chosen = sorted(live, key=lambda k: (k[0], k[1]))[b % len(live)]
            alerts = [make_alert(chosen[1], chosen[0], retracted=True)]
        elif what == "replay":
            assert incidents.process(*last_call) == []
            continue
        for alert in alerts:
            index = (int(alert.window_end.timestamp() * 1000) - T0) // SIZE - 1
            if alert.retracted:
                del live[(alert.series, index)]
            else:
                live[(alert.series, index)] = alert
        records += incidents.process(alerts, windows)
        last_call = (alerts, windows)
        one_firing_per_series(incidents)
        near = {s for (s, i) in live if front - i < resolve_after}
        assert {r.series for r in incidents.firing()} == near
        live_ids = {a.alert_id for a in live.values()}
        assert all(r.last_alert_id in live_ids for r in incidents.firing())
    check_stream(records)
