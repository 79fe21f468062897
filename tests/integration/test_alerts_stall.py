"""A silent checkout stall on the real broker and chDB: no friction event anywhere, yet a
drop-off alert within 15 minutes of event time (docs/concepts.md §6, "Progression in flight").

Half a day of simulated traffic (20,000 customers, quick progress times: about a dozen web
checkout entries per 5-minute window), then for an hour 93% of the web journeys that reach
checkout never complete their order: their `order_completed` is never sent, as when a payment
page hangs. Through ingest, identity, journeys, friction and the sink, the alert in ClickHouse
must hold the checkout's drop-off series (headline or related), reach the checkout's team
(`payments` in the shipped routing), carry example journeys and say the stage's progression
observed vs expected; its first firing version must be decided by a window ending within 15
minutes of the stall's start.

The contact center's rows of 06:00-07:00 come in an export published after everything else,
more than five hours after their windows closed: past the friction windows' allowed lateness
(an hour), within the late tolerance a late channel's windows keep ("late channels
are heard"), so every one of them is counted in its window.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from producers.pii import PiiHasher
from producers.simulator.config import SimConfig
from producers.simulator.engine import SimEvent, Simulation
from producers.simulator.runner import publish_events, send_heartbeats
from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import session

from .helpers import drain, journeys, read_all, stage_topics, stop


def _a_recent_tuesday() -> datetime:
    """Midnight of a Tuesday 2 to 3 weeks back: recent enough for the ingest stage's bound on
    event age whenever the test runs, always the same weekday and hour for the baselines."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=14 + (today.weekday() - 1) % 7)


START = _a_recent_tuesday()
STALL = (START + timedelta(hours=8), START + timedelta(hours=9))
EXPORTED = (START + timedelta(hours=6), START + timedelta(hours=7))  # published last
CONFIG = SimConfig(
    customers=20_000,
    days=0.5,
    start=START,
    seed=41,
    stage_conversion={"discover": 0.85, "consider": 0.7, "cart": 0.8, "checkout": 0.8},
    progress_times="quick",
)
SERIES = "dropoff purchase:checkout:web dropoff"
STAGES = ("ingest", "identity", "journeys", "friction", "sink")


def stalled(events: list[SimEvent], lost: float, seed: int = 5) -> list[SimEvent]:
    """The events without the orders of `lost` of the web sessions that reached checkout
    during the stall."""
    rng = random.Random(seed)
    sessions = {
        e.event.get("session_id")
        for e in events
        if e.event["channel"] == "web"
        and e.event["event_type"] == "checkout_step"
        and STALL[0] <= e.occurred_at < STALL[1]
        and rng.random() < lost
    }
    kept = []
    for e in events:
        order = e.event["event_type"] == "order_completed"
        if not (order and e.event.get("session_id") in sessions):
            kept.append(e)
    return kept


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def holds_checkout(row: dict[str, Any]) -> bool:
    headline = f"{row['series_kind']} {row['scope']} {row['series_name']}"
    return SERIES in (headline, *row["related_series"])


def test_a_silent_checkout_stall_pages_the_checkout_team(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "pipeline.log"
    watch = [
        journeys(settings, "process", stage, log=log)
        for stage in ("ingest", "identity", "journeys", "friction")
    ]
    watch.append(journeys(settings, "sink", log=log))
    processes += watch
    events, _truth = Simulation(CONFIG, PiiHasher(settings.pii)).run()
    events = stalled([e for e in events if e.occurred_at < CONFIG.end], lost=0.93)
    exported = [
        e
        for e in events
        if e.event["channel"] == "call_center" and EXPORTED[0] <= e.occurred_at < EXPORTED[1]
    ]
    held = {id(e) for e in exported}
    publish_events(settings, [e for e in events if id(e) not in held], None)
    publish_events(settings, exported, None)  # the export lands after all the rest
    send_heartbeats(settings, ms(CONFIG.end + timedelta(hours=1)))
    drain(settings, stage_topics(settings, *STAGES), watch, log)
    stop(watch, log)

    with session(settings.clickhouse_dsn) as ch:
        result = ch.query(
            "SELECT incident_id, series_kind, scope, series_name, related_series, team, teams, "
            "cause, examples, started_at, late, found_late_by FROM alerts FINAL"
        )
        rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    found = [r for r in rows if holds_checkout(r)]
    assert found, [(r["series_kind"], r["scope"], r["started_at"]) for r in rows]
    alert = min(found, key=lambda r: r["started_at"])
    assert "payments" in (alert["team"], *alert["teams"]), alert
    assert alert["examples"], alert  # journeys that reached checkout and did not move on
    assert "stopped moving on" in alert["cause"] and "expected at their age" in alert["cause"]
    # Decided within 15 minutes of event time from the stall's start: the first firing
    # version's window.
    topic = Topics.from_settings(settings.topics).alerts
    records = [orjson.loads(v) for _k, v in read_all(settings, topic) if v is not None]
    first = min(
        r["last_window_end"]
        for r in records
        if r["incident_id"] == alert["incident_id"] and r["status"] == "firing"
    )
    decided = datetime.fromtimestamp(first, UTC)  # epoch seconds, as the row has it
    print(f"\nstall at {STALL[0]:%H:%M}, decided by the window ending {decided:%H:%M}")
    print(f"cause: {alert['cause']}")
    assert STALL[0] < decided <= STALL[0] + timedelta(minutes=15), (decided, STALL[0])

    # The late export is counted in its windows (the latest version of each), not dropped.
    assert exported
    windows = Topics.from_settings(settings.topics).friction_windows
    latest: dict[tuple[str, float], dict[str, Any]] = {}
    for _k, value in read_all(settings, windows):
        for window in envelope.decode(value or b"").events:
            key = (window["scope"], window["window_start"])
            calls = window["series_kind"] == "volume" and window["scope"].startswith("call_center:")
            if calls and (key not in latest or window["version"] > latest[key]["version"]):
                latest[key] = window
    span = (EXPORTED[0].timestamp(), EXPORTED[1].timestamp())
    counted = sum(
        w["counts"].get("events", 0) for (_s, at), w in latest.items() if span[0] <= at < span[1]
    )
    assert counted == len(exported), (counted, len(exported))
    late_rows = [r for r in rows if r["late"]]
    print(f"late export: {len(exported)} rows counted; late alerts: {len(late_rows)}")
