"""Friction and drop-off alerts end to end: simulated traffic with scheduled incidents ->
ingest -> identity -> friction stage -> alerts topic, ClickHouse and a webhook receiver.

The acceptance run: two days of 50,000 simulated customers (the traffic of a mid-sized
shop) with four half-hour incidents, one per channel: web checkout errors, app crashes on
the payment screen, long call-center queues, and the store tills sending nothing (the
point-of-sale rows are withheld: the simulator's `down` has no effect on a store purchase,
and a till outage looks like that from here). Each must give exactly one alert, on its
series, starting within two windows of the incident and resolved after it, with the cause
named and routed to its team; nothing else may alert in the two days. The receiver fails its
first three calls, and the friction worker is SIGKILLed while the first alert fires and
started again: ClickHouse (FINAL) and the receiver (deduplicating on the idempotency key)
must still hold each alert exactly once.

The detector needs volume to be sure: in these runs a 15-fold rise of friction at a
touchpoint with 25 to 55 exposures per 5-minute window is found within two windows and keeps
firing for half an hour; an 8-fold one needed about 80. The incidents are sized accordingly.

The journeys stage is in this run, so the stage series (entries, drop-offs per stage and
channel) are tested for false alerts beside the friction and volume series. A second,
smaller run checks that they count exactly what it reported (entries, progressions and
drop-offs per stage, summed over the four partitions' windows).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from deploy.kafka_admin import committed_offsets
from producers.pii import PiiHasher
from producers.simulator.config import Incident, SimConfig
from producers.simulator.engine import SimEvent, Simulation
from producers.simulator.runner import publish_events, send_heartbeats
from schemas.friction import POSITIVE_SIGNALS
from schemas.settings import SHIPPED_ALERT_ROUTING, Settings
from schemas.topics import Topics
from sinks.clickhouse import session

from .helpers import drain, end_offsets, journeys, kill, read_all, stage_topics, stop, wait_for

WINDOW = timedelta(minutes=5)
WEB = Incident.parse("web:/checkout errors x15 @2280m for 30m")
APP = Incident.parse("app:payment errors x15 @2400m for 30m")
CALLS = Incident.parse("call_center:queue:support waits x5 @2520m for 30m")
OUTAGE_MINUTE, OUTAGE_MINUTES = 2640, 30  # store tills down: no POS rows for half an hour
CONFIG = SimConfig(
    customers=50_000,
    days=2,
    seed=7,
    conversion_scale=1.5,
    support_journeys_per_day=0.3,
    app_share=1.0,
    store_purchase_share=1.0,
    account_share=0.9,
    login_probability=0.9,
    incidents=(WEB, APP, CALLS),
)


class Receiver(ThreadingHTTPServer):
    """A webhook receiver that fails its first `fail_first` calls (HTTP 503) and keeps every
    body it accepted, deduplicated by idempotency key."""

    def __init__(self, fail_first: int) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.fail_first = fail_first
        self.calls = 0
        self.accepted: list[str] = []
        self.held: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/journeys"


class _Hook(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        key = self.headers.get("Idempotency-Key", "")
        with self.server.lock:
            self.server.calls += 1
            failing = self.server.calls <= self.server.fail_first
            if not failing:
                self.server.accepted.append(key)
                self.server.held.setdefault(key, orjson.loads(body))
        self.send_response(503 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


def routing_file(path: Path, url: str) -> Path:
    """The shipped routing with every team's incidents posted to `url` (generic JSON)."""
    lines = []
    for line in SHIPPED_ALERT_ROUTING.read_text().splitlines():
        lines.append(line)
        if line.startswith("team = "):
            lines.append(f'webhook = "{url}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def in_outage(sim: SimEvent, start: datetime) -> bool:
    begin = start + timedelta(minutes=OUTAGE_MINUTE)
    return sim.event["channel"] == "store" and begin <= sim.occurred_at < begin + timedelta(
        minutes=OUTAGE_MINUTES
    )


# Drained twice over: the detector's input is written by the stage that reads it.
STAGES = ("ingest", "identity", "journeys", "friction", "sink")


def alert_records(settings: Settings) -> list[dict[str, Any]]:
    topic = Topics.from_settings(settings.topics).alerts
    return [orjson.loads(v) for _k, v in read_all(settings, topic) if v is not None]


def firing_at(settings: Settings, scope: str) -> bool:
    return any(r["status"] == "firing" and r["scope"] == scope for r in alert_records(settings))


EXPECTED = [  # incident start (minute), end, series kind and scope, team, cause text
    (
        WEB.start_minute,
        WEB.start_minute + WEB.duration_minutes,
        "friction",
        "web:/checkout",
        "payments",
        "at web:/checkout",
    ),
    (
        APP.start_minute,
        APP.start_minute + APP.duration_minutes,
        "friction",
        "app:payment",
        "payments",
        "app_crash at app:payment",
    ),
    (
        CALLS.start_minute,
        CALLS.start_minute + CALLS.duration_minutes,
        "friction",
        "call_center:queue:support",
        "customer-care",
        "long_queue_wait at call_center:queue:support",
    ),
    (
        OUTAGE_MINUTE,
        OUTAGE_MINUTE + OUTAGE_MINUTES,
        "volume",
        "store:pos",
        "data-platform",
        "source pos (store) went quiet",
    ),
]


def series_tested(ch: Any) -> dict[str, int]:
    """Series the detector tested, per kind, from the windows it read: each counter of a
    window except positive moments, `progressed` (the denominator of a drop-off rate) and
    what dropped journeys saw (`saw:...`, a cause's evidence) and progressions by age
    (`progressed+<k>`, the in-flight test's evidence)."""
    skip = ", ".join(f"'{name}'" for name in ["progressed", *(s.value for s in POSITIVE_SIGNALS)])
    rows = ch.query(
        "SELECT series_kind, uniqExact(scope, name) FROM friction_windows FINAL "
        f"ARRAY JOIN mapKeys(counts) AS name WHERE name NOT IN ({skip}) "
        "AND NOT startsWith(name, 'saw:') AND NOT startsWith(name, 'progressed+') "
        "GROUP BY series_kind"
    ).result_rows
    return dict(rows)


def report(rows: list[dict[str, Any]], records: list[dict[str, Any]], start: datetime) -> None:
    """The table the acceptance asks for (shown with `pytest -s`): per incident its alert, the
    window it first fired in, counted from the incident's start, and the cause it named."""
    fired: dict[str, datetime] = {}
    for r in records:
        if r["status"] == "firing" and r["incident_id"] not in fired:
            fired[r["incident_id"]] = datetime.fromtimestamp(r["last_window_end"], UTC)
    found = {(r["series_kind"], r["scope"]): r for r in rows}
    print("\nincident start | series | alert start | fired after (windows) | cause")
    for begin, _end, kind, scope, *_ in EXPECTED:
        alert = found.get((kind, scope))
        if alert is None:
            continue
        began = start + timedelta(minutes=begin)
        at = fired.get(alert["incident_id"])
        delay = "-" if at is None else f"{(at - began) / WINDOW:g}"
        print(
            f"{began:%a %H:%M} | {kind} {scope} | {alert['started_at']:%H:%M} | {delay} | "
            f"{alert['cause']}"
        )


def check_alerts(
    rows: list[dict[str, Any]], start: datetime, records: list[dict[str, Any]]
) -> None:
    """Exactly the expected alerts, each as the acceptance says."""
    report(rows, records, start)
    found = {(r["series_kind"], r["scope"]): r for r in rows}
    assert len(rows) == len(EXPECTED), [
        (r["series_kind"], r["scope"], r["status"], r["started_at"], r["related_series"])
        for r in rows
    ]
    for begin, end, kind, scope, team, cause in EXPECTED:
        alert = found.get((kind, scope))
        assert alert is not None, (kind, scope, sorted(found))
        began = start + timedelta(minutes=begin)
        started = alert["started_at"]
        # Not after two windows; before its nominal start only as far as its rise shows in
        # the data: this run's app crashes run at 2-3x from half an hour before the app
        # incident's start (friction_windows: 6, 8, 1, 6, 4, 5 a window against ~2), and
        # the accumulating test finds that from there.
        assert began - 6 * WINDOW <= started <= began + 2 * WINDOW, (scope, started, began)
        assert alert["status"] == "resolved", alert
        assert alert["resolved_at"] > start + timedelta(minutes=end), alert
        assert alert["team"] == team, alert
        assert cause in alert["cause"], alert["cause"]
        if kind == "friction":
            assert alert["examples"], alert  # people who met the friction there


def test_simulated_incidents_give_one_alert_each_across_a_crash(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "pipeline.log"
    receiver = Receiver(fail_first=3)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {
        "JOURNEYS_ALERTS__ROUTING_FILE": str(routing_file(tmp_path / "routing.toml", receiver.url)),
        "JOURNEYS_ALERTS__BASE_DELAY_SECONDS": "0.2",
    }
    t = Topics.from_settings(settings.topics)
    watch = [
        journeys(settings, "process", stage, log=log, **env)
        for stage in ("ingest", "identity", "journeys", "friction")
    ]
    watch.append(journeys(settings, "sink", log=log))
    processes += watch
    events, _truth = Simulation(CONFIG, PiiHasher(settings.pii)).run()
    start = CONFIG.start
    events = [e for e in events if e.occurred_at < CONFIG.end and not in_outage(e, start)]
    # Up to 20 minutes into the web incident, then the rest while the worker is killed.
    cut = start + timedelta(minutes=WEB.start_minute + 20)
    first = [e for e in events if e.occurred_at < cut]
    publish_events(settings, first, None)
    wait_for(lambda: firing_at(settings, "web:/checkout"), 180, "the web alert to fire", watch, log)
    stitched, group = t.stitched, settings.topics.group("friction")
    before = end_offsets(settings, stitched)
    feeder = threading.Thread(target=publish_events, args=(settings, events[len(first) :], None))
    feeder.start()
    wait_for(
        lambda: any(o > before[p] for p, o in committed_offsets(settings, group, stitched).items()),
        120,
        "the friction stage to take more input",
        watch,
        log,
    )
    kill(watch[3])
    watch[3] = journeys(settings, "process", "friction", log=log, **env)
    processes.append(watch[3])
    feeder.join()
    send_heartbeats(settings, ms(CONFIG.end))
    drain(settings, stage_topics(settings, *STAGES), watch, log)
    notified = {
        f"{r['incident_id']}:{r['version']}": r for r in alert_records(settings) if r["notify"]
    }
    # Every page reaches the receiver in the end, retries and the crash notwithstanding.
    wait_for(lambda: set(receiver.held) >= set(notified), 60, "every page to arrive")
    stop(watch, log)
    receiver.shutdown()
    receiver.server_close()

    with session(settings.clickhouse_dsn) as ch:
        result = ch.query(
            "SELECT incident_id, version, status, series_kind, scope, started_at, resolved_at, "
            "team, cause, examples, related_series FROM alerts FINAL"
        )
        rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
        versions = ch.query("SELECT count(), uniqExact(incident_id, version) FROM alerts")
        plain, distinct = versions.result_rows[0]
        kinds = series_tested(ch)
    for row in rows:
        for name in ("started_at", "resolved_at"):
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=start.tzinfo)
    # The false-alert check ("nothing else alerts") covers at least 100 series.
    assert sum(kinds.values()) >= 100 and set(kinds) >= {"friction", "volume", "stage"}, kinds
    check_alerts(rows, start, alert_records(settings))
    assert plain == distinct  # the sink wrote each version once, the crash notwithstanding

    # The receiver: each alert paged each of its teams once when it fired (when it opened, or
    # when the team came to own one of its series) and once when it resolved; each page held
    # once. Every team shares the receiver's URL, so one request names all it pages.
    assert receiver.calls >= receiver.fail_first + len(notified)
    assert set(receiver.held) == set(notified)
    pages = Counter(
        (body["incident"]["incident_id"], body["incident"]["status"], team)
        for body in receiver.held.values()
        for team in body["to"]
    )
    assert set(pages.values()) == {1}, pages
    paged = {(aid, status) for aid, status, _ in pages}
    assert paged == {(r["incident_id"], s) for r in rows for s in ("firing", "resolved")}
    for aid, _, team in pages:
        assert (aid, "resolved", team) in pages  # a resolve reaches every team paged


def test_stage_series_count_what_the_journeys_stage_reported(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    """Entries, progressions and drop-offs per stage, summed over every window of the four
    partitions, equal the transitions and standing drop-offs in ClickHouse."""
    log = tmp_path / "pipeline.log"
    watch = [
        journeys(settings, "process", stage, log=log)
        for stage in ("ingest", "identity", "journeys", "friction")
    ]
    watch.append(journeys(settings, "sink", log=log))
    processes += watch
    config = SimConfig(customers=3_000, days=2, seed=31)
    events, truth = Simulation(config, PiiHasher(settings.pii)).run()
    publish_events(settings, events, None)
    # Past the last deadline and the window that holds it, so that window closes too.
    send_heartbeats(settings, ms(truth.closes_at + WINDOW))
    drain(settings, stage_topics(settings, *STAGES), watch, log)
    stop(watch, log)
    with session(settings.clickhouse_dsn) as ch:
        counted = {
            (stage, what): n
            for stage, what, n in ch.query(
                "SELECT splitByChar(':', scope)[2], name, sum(n) FROM friction_windows FINAL "
                "ARRAY JOIN mapKeys(counts) AS name, mapValues(counts) AS n "
                "WHERE series_kind = 'stage' AND scope LIKE 'purchase:%:*' "
                "AND NOT startsWith(name, 'saw:') AND NOT startsWith(name, 'progressed+') "
                "GROUP BY 1, 2"
            ).result_rows
        }
        entered = ch.query(
            "SELECT to_stage, count() FROM journey_transitions FINAL "
            "WHERE NOT retracted AND definition_id = 'purchase' GROUP BY 1"
        ).result_rows
        progressed = ch.query(
            "SELECT from_stage, count() FROM journey_transitions FINAL "
            "WHERE NOT retracted AND definition_id = 'purchase' AND from_stage IS NOT NULL "
            "GROUP BY 1"
        ).result_rows
        dropped = ch.query(
            "SELECT stage, count() FROM dropoffs_standing WHERE definition_id = 'purchase' "
            "GROUP BY 1"
        ).result_rows
    want = {(stage, "entered"): n for stage, n in entered}
    want |= {(stage, "progressed"): n for stage, n in progressed}
    want |= {(stage, "dropped"): n for stage, n in dropped}
    assert sum(want.values()) > 1_000
    assert {k: v for k, v in counted.items() if v} == want
