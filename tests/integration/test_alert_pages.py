"""Pages reach the team that owns the problem, on the real broker and chDB: the webhook thread
the friction stage runs (`AlertDeliverer`) reads alert versions from the `alerts` topic, the
silences that `journeys alerts silence` wrote to `alert-silences`, and posts to a local
receiver with one path per team; `journeys sink` stores alerts and silences in ClickHouse.

The alert versions are the ones the detector publishes for the story (`AlertGroups` with the
shipped routing, serialised as the detector writes them): a web-wide alert (storefront's)
whose headline moves to the checkout (payments'), then resolves; and an alert at the app's
payment screen, silenced by its series. How the detector gets there from events is
`test_alerts.py`'s."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from deploy.alerts.reader import read_silences
from schemas.alerting import load_alert_routing
from schemas.settings import SHIPPED_ALERT_ROUTING, Settings
from schemas.topics import Topics
from sinks.clickhouse import session
from stream_processors.friction.alerts.core.groups import AlertGroups
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.alerts.core.routing import AlertRouter
from stream_processors.friction.alerts.delivery import AlertDeliverer
from stream_processors.friction.alerts.silence_log import SilenceReader
from stream_processors.friction.core.rules import Series
from tests.unit.friction.alerts.builders import CHECKOUT, closed, make_alert, tracker

from .helpers import drain, journeys, stage_topics, stop, wait_for

WEB_WIDE = Series("friction", "web:*", "friction")  # storefront's
APP = Series("friction", "app:payment", "app_crash")  # payments' (route checkout-app)


class Pages(ThreadingHTTPServer):
    """Keeps every request: (team from the path, idempotency key, body)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.got: list[tuple[str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def url(self, team: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{team}"

    def to(self, team: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for path, _key, body in self.got if path == team]


class _Hook(BaseHTTPRequestHandler):
    server: Pages

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            key = self.headers.get("Idempotency-Key", "")
            self.server.got.append((self.path.strip("/"), key, orjson.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


PD_KEY = "0123456789abcdef0123456789abcdef"


def routing_file(path: Path, pages: Pages) -> Path:
    """The shipped routing, each team's webhook its own path on the receiver; the app's
    checkout also has a PagerDuty integration whose Events v2 endpoint is the receiver."""
    lines = []
    for line in SHIPPED_ALERT_ROUTING.read_text().splitlines():
        lines.append(line)
        if line.startswith("team = "):
            team = line.split('"')[1]
            lines.append(f'webhook = "{pages.url(team)}"')
        if line == 'name = "checkout-app"':
            lines += [f'pagerduty = "{PD_KEY}"', f'pagerduty_url = "{pages.url("pd")}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def versions(router: AlertRouter) -> Iterator[AlertRecord]:
    """Window by window: the web-wide alert, the checkout taking its headline, the app alert;
    then quiet windows until both resolve."""
    incidents, groups = tracker(), AlertGroups(router=router)
    steps = [(10, [WEB_WIDE]), (11, [WEB_WIDE, CHECKOUT]), (30, [APP])]
    steps += [(i, []) for i in (*range(12, 17), *range(31, 36))]
    for index, series in sorted(steps):
        records = incidents.process([make_alert(index, s) for s in series], closed(index))
        for group in groups.process(records, incidents.front_ms):
            record = groups.publish(group, group.record())
            if record is not None:
                yield record


def publish(settings: Settings, records: list[AlertRecord]) -> None:
    producer = Producer({**settings.kafka.as_librdkafka_dict(), "acks": "all"})
    topic = Topics.from_settings(settings.topics).alerts
    for record in records:
        producer.produce(topic, orjson.dumps(record.row()), record.incident_id.encode(), 0)
    assert producer.flush(30) == 0


def test_the_new_owner_is_paged_and_a_silenced_series_is_stored_not_paged(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "pipeline.log"
    pages = Pages()
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    path = routing_file(tmp_path / "routing.toml", pages)
    env = {"JOURNEYS_ALERTS__ROUTING_FILE": str(path)}
    silence = journeys(
        settings,
        "alerts",
        "silence",
        f"{APP.kind} {APP.scope} *",
        "--for",
        "1h",
        "--reason",
        "app release",
        log=log,
        **env,
    )
    processes.append(silence)
    assert silence.wait(60) == 0, log.read_text()
    routing = load_alert_routing(path)
    records = list(versions(AlertRouter(routing)))
    publish(settings, records)
    web = next(r.incident_id for r in records if r.series == CHECKOUT)
    app = next(r.incident_id for r in records if r.series == APP)

    alerts = settings.alerts.model_copy(update={"routing_file": path, "base_delay_seconds": 0.1})
    deliverer = AlertDeliverer(settings.model_copy(update={"alerts": alerts}), routing).start()
    try:
        wait_for(lambda: len(pages.got) >= 4 and deliverer.silenced >= 2, 60, "the pages")
    finally:
        deliverer.stop()
    assert deliverer.error is None

    # The web alert: storefront paged when it opened; payments when the headline moved to
    # the checkout, told what changed and who was paged before; both when it resolved.
    storefront, payments = pages.to("storefront"), pages.to("payments")
    assert [(b["incident"]["status"], b["incident"]["change"]) for b in storefront] == [
        ("firing", "opened"),
        ("resolved", "resolved"),
    ]
    assert [b["incident"]["status"] for b in payments] == ["firing", "resolved"]
    moved = payments[0]["incident"]
    assert moved["incident_id"] == web and moved["paged_before"] == ["storefront"]
    assert moved["change"] == (
        f"the headline moved from {WEB_WIDE} (storefront) to {CHECKOUT} (payments)"
    )
    assert payments[0]["to"] == ["payments"]
    # The app alert pages no one: its series is silenced.
    assert all(body["incident"]["incident_id"] != app for _, _, body in pages.got)
    assert len(pages.got) == 4

    # ... but both alerts and the silence are stored.
    sink = journeys(settings, "sink", log=log)
    processes.append(sink)
    drain(settings, stage_topics(settings, "sink"), [sink], log, passes=1)
    stop([sink], log)
    pages.shutdown()
    pages.server_close()
    with session(settings.clickhouse_dsn) as ch:
        rows = ch.query("SELECT incident_id, status FROM alerts FINAL").result_rows
        stored = {str(aid): str(status) for aid, status in rows}
        silences = ch.query("SELECT target, match, reason FROM alert_silences FINAL").result_rows
    assert stored == {web: "resolved", app: "resolved"}
    assert silences == [("series", f"{APP.kind} {APP.scope} *", "app release")]
    lifted_early(settings, processes, log)


def lifted_early(settings: Settings, processes: list[Any], log: Path) -> None:
    """`alerts silences --lift`: written again, ending now, which the webhook thread reads as
    ended."""
    (written,) = read_silences(settings)
    lift = journeys(settings, "alerts", "silences", "--lift", written.silence_id[:8], log=log)
    processes.append(lift)
    assert lift.wait(60) == 0, log.read_text()
    reader = SilenceReader(settings)
    reader.start()
    reader.close()
    now = datetime.now(UTC)
    assert reader.held.covering(APP, "checkout-app", now) is None
    assert reader.held.covering(APP, "checkout-app", written.starts_at) is not None


def test_alerts_test_sends_a_sample_page_through_the_sender(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "cli.log"
    pages = Pages()
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    path = routing_file(tmp_path / "routing.toml", pages)
    proc = journeys(
        settings,
        "alerts",
        "test",
        "checkout-app",
        log=log,
        JOURNEYS_ALERTS__ROUTING_FILE=str(path),
    )
    processes.append(proc)
    assert proc.wait(60) == 0, log.read_text()
    pages.shutdown()
    pages.server_close()
    (body,) = pages.to("payments")
    assert body["to"] == ["payments"] and body["incident"]["change"] == "a test page"
    trigger, resolve = pages.to("pd")  # a test leaves no PagerDuty incident open
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["routing_key"] == PD_KEY and trigger["dedup_key"] == resolve["dedup_key"]
    assert "delivered" in log.read_text()
