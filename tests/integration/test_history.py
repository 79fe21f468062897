"""History in, safely, on the real broker and chDB: `/v1/import` goes to
the history domain (its own topics, stage instances and event time) and is stored flagged
backfill; event times beyond the age bound are dead-lettered with their reason at the
collector and at the ingest stage; an import across 101 months is stored without stopping
the sink; and two days of the simulator's calls imported while live traffic flows give the
journeys and drop-offs of the simulator's ground truth, without moving live time."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from deploy.kafka_admin import ensure_topics
from producers.pii import PiiHasher
from producers.simulator.config import Incident, SimConfig
from producers.simulator.engine import Simulation
from producers.simulator.runner import send_heartbeats
from producers.simulator.truth import GroundTruth
from schemas import envelope
from schemas.history import history_settings
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import reader_dsn, session
from stream_processors.identity.core.records import person_id

from .helpers import (
    basic_auth,
    dead_letters,
    drain,
    free_port,
    journeys,
    post,
    read_all,
    reap,
    stage_topics,
    start_collector,
    stop,
    terminate,
    wait_for,
)
from .segment_calls import KEYS, SOURCES, as_call

pytestmark = pytest.mark.integration

TEN_YEARS = "P3653D"  # processor.max_event_age raised to cover 101 months
WEB = {"Authorization": basic_auth(KEYS["web"])}


def history_stages(settings: Settings, log: Path, stages: tuple[str, ...], **env: str) -> list[Any]:
    return [journeys(settings, "process", s, "--history", log=log, **env) for s in stages]


def monthly_calls(months: int) -> list[dict[str, Any]]:
    """One page call per month, going back `months` months from last month."""
    first = datetime.now(UTC).replace(day=15, hour=12, minute=0, second=0, microsecond=0)
    calls = []
    for m in range(months):
        year, month = divmod(first.year * 12 + first.month - 1 - (m + 1), 12)
        at = first.replace(year=year, month=month + 1)
        calls.append(
            {
                "type": "track",
                "event": "page_view",
                "messageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"month-{m}")),
                "userId": f"c-{m}",
                "timestamp": at.isoformat(),
                "context": {"page": {"path": "/old"}},
            }
        )
    return calls


def test_a_101_month_import_is_stored_and_times_beyond_the_bound_are_dead_lettered(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "pipeline.log"
    history = history_settings(settings)
    ensure_topics(history)
    # The default bound (2 years) at the collector: the old calls are refused, with reason.
    default_port = free_port()
    collector = start_collector(settings, default_port, SOURCES, tmp_path / "c1.log")
    processes.append(collector)
    calls = monthly_calls(101)
    year_one = {**calls[0], "messageId": str(uuid.uuid4()), "timestamp": "0001-01-01T00:00:00Z"}
    status, body = post(default_port, "/v1/import", {"batch": [*calls, year_one]}, WEB)
    assert status == 200, body
    refused = {r["index"]: r for r in body["rejected"]}
    assert body["accepted"] == 102 - len(refused) and 70 < len(refused) < 101
    assert {r["reason"] for r in refused.values()} == {"old_timestamp"}
    assert 101 in refused and "0001" not in refused[101]["message"]
    assert terminate(collector, 30) == 0
    # The bound raised to cover them: the collector and the history stages take all 101.
    raised = {"JOURNEYS_PROCESSOR__MAX_EVENT_AGE": TEN_YEARS}
    port = free_port()
    processes.append(start_collector(settings, port, SOURCES, tmp_path / "c2.log", **raised))
    status, body = post(port, "/v1/import", {"batch": calls}, WEB)
    assert (status, body.get("accepted"), body.get("rejected")) == (200, 101, None), body
    # At the ingest stage too: a year-0001 event published straight to history's raw.
    old = {
        "event_id": str(uuid.uuid4()),
        "channel": "web",
        "source": "web-shop",
        "event_type": "page_view",
        "occurred_at": "0001-01-01T00:00:00+00:00",
        "identity": {"customer_id": "c-0001"},
    }
    producer = Producer(settings.kafka.as_librdkafka_dict())
    raw = Topics.from_settings(history.topics).raw
    producer.produce(raw, envelope.encode([orjson.dumps(old)], None), partition=0)
    assert producer.flush(30) == 0
    watch = history_stages(settings, log, ("ingest", "identity"), **raised)
    watch.append(journeys(settings, "sink", "--history", log=log))
    processes += watch
    drain(history, stage_topics(history, "ingest", "identity", "sink"), watch, log)
    assert all(p.poll() is None for p in watch), "the sink and the stages keep running"
    stop(watch, log)
    with session(settings.clickhouse_dsn) as ch:
        rows, months, backfill = ch.query(
            "SELECT uniqExact(event_id), uniqExact(toYYYYMM(occurred_at)), min(backfill) "
            "FROM touchpoints"
        ).result_rows[0]
    assert (rows, months, backfill) == (101, 101, 1)
    # The collector's refusals went to the dead-letter topic, with their reason and no value.
    live_dlq = dead_letters(settings, Topics.from_settings(settings.topics).dlq_ingest)
    assert Counter(d["reason"] for d in live_dlq) == {"old_timestamp": len(refused)}
    assert all("0001" not in d["detail"] for d in live_dlq)
    (stage_letter,) = dead_letters(history, Topics.from_settings(history.topics).dlq_ingest)
    assert (stage_letter["reason"], stage_letter["event_id"]) == ("old_timestamp", old["event_id"])
    assert "0001" not in stage_letter["detail"]


def test_publish_history_goes_to_the_history_domain_flagged_and_closes_its_time(
    settings: Settings, tmp_path: Path
) -> None:
    """`journeys publish --history FILE --close-at TIME`: every event on history's raw,
    flagged backfill, then a heartbeat at TIME on each of its partitions; nothing on live raw.
    Plain `journeys publish` stays live."""
    sim, truth = Simulation(SimConfig(customers=20, days=1, seed=3), PiiHasher(settings.pii)).run()
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"".join(orjson.dumps(s.event) + b"\n" for s in sim))
    closes = truth.closes_at.isoformat()
    log = tmp_path / "publish.log"
    published = journeys(settings, "publish", "--history", str(path), "--close-at", closes, log=log)
    assert published.wait(timeout=120) == 0, log.read_text()
    history = history_settings(settings)
    live_raw, history_raw = (Topics.from_settings(s.topics).raw for s in (settings, history))
    assert read_all(settings, live_raw) == []
    batches = [envelope.decode(v or b"") for _k, v in read_all(history, history_raw)]
    events = [e for b in batches for e in b.events]
    assert sorted(e["event_id"] for e in events) == sorted(s.event["event_id"] for s in sim)
    assert all(e["backfill"] is True for e in events)
    closing = int(truth.closes_at.timestamp() * 1000)
    heartbeats = [b.watermark_ms for b in batches if not b.events]
    assert heartbeats == [closing] * settings.topics.partitions
    # Plain publish is live: the same file lands on live raw, not flagged.
    live = journeys(settings, "publish", str(path), log=log)
    assert live.wait(timeout=120) == 0, log.read_text()
    flags = [
        e.get("backfill", False)
        for _k, v in read_all(settings, live_raw)
        for e in envelope.decode(v or b"").events
    ]
    assert len(flags) == len(sim) and not any(flags)


# -- replaying two days through /v1/import while live traffic flows -------------------------

Outcome = tuple[str, str, tuple[str, ...], str]
Drop = tuple[str, str, int]
IMPORT_BATCH = 200


def live_traffic(port: int, stop_at: threading.Event, sent: list[str]) -> None:
    """Other customers browsing now (no timestamp: the time of receipt), logged in (so the
    identity authority decides links and live time moves in the journeys stage too), until
    told to stop."""
    n = 0
    while not stop_at.is_set():
        calls: list[dict[str, Any]] = []
        for k in range(5):
            who, step = f"live-{(n * 5 + k) % 60}", ("home_view", "search", "product_view")
            calls.append(
                {
                    "type": "track",
                    "event": step[(n // 12) % 3],
                    "messageId": str(uuid.uuid4()),
                    "userId": who,
                    "anonymousId": f"anon-{who}-{n // 12}",
                    "context": {"page": {"path": "/live"}},
                }
            )
        status, body = post(port, "/v1/batch", {"batch": calls}, WEB)
        assert status == 200, body
        sent += [c["messageId"] for c in calls]
        n += 1
        time.sleep(0.2)


def live_time_known(settings: Settings) -> bool:
    """Has the live journeys stage released a live journey, its time past live events?"""
    topic = Topics.from_settings(settings.topics).journey_updates
    return any(envelope.decode(v or b"").events for _k, v in read_all(settings, topic))


def import_history(port: int, events: list[dict[str, Any]]) -> None:
    """The simulator's events as the calls of each channel's write key, in order."""
    for start in range(0, len(events), IMPORT_BATCH):
        by_key: dict[str, list[dict[str, Any]]] = {}
        for event in events[start : start + IMPORT_BATCH]:
            by_key.setdefault(KEYS[event["channel"]], []).append(as_call(event))
        for key, calls in by_key.items():
            status, body = post(
                port, "/v1/import", {"batch": calls}, {"Authorization": basic_auth(key)}
            )
            assert status == 200 and "rejected" not in body, body


def outcomes(ch: Client, persons: set[str]) -> Counter[Outcome]:
    rows = ch.query(
        "SELECT latest_person_id, definition_id, stages.1, status FROM journeys_latest "
        "WHERE status != 'merged'"
    ).result_rows
    return Counter((p, d, tuple(s), st) for p, d, s, st in rows if str(p) in persons)


def truth_outcomes(truth: GroundTruth) -> Counter[Outcome]:
    return Counter(
        (person_id(j.person), j.definition, tuple(s.stage for s in j.stages), str(j.outcome))
        for j in truth.journeys
    )


def standing(ch: Client) -> Counter[Drop]:
    rows = ch.query(
        "SELECT definition_id, stage, toUnixTimestamp64Milli(dropped_at) FROM dropoffs_standing"
    ).result_rows
    return Counter((d, s, int(at)) for d, s, at in rows)


def truth_drops(truth: GroundTruth) -> Counter[Drop]:
    return Counter(
        (j.definition, str(j.dropped_stage), int(j.dropped_at.timestamp() * 1000))
        for j in truth.journeys
        if j.dropped_at is not None
    )


def live_watermarks(settings: Settings) -> list[int]:
    topic = Topics.from_settings(settings.topics).touchpoints
    marks = [envelope.decode(v or b"").watermark_ms for _k, v in read_all(settings, topic)]
    return [m for m in marks if m is not None]


def history_reads(history: Settings) -> dict[str, list[str]]:
    """What the history stages read; its friction counts traffic only (no stage series)."""
    reads = stage_topics(history, "ingest", "identity", "journeys", "sink")
    t = Topics.from_settings(history.topics)
    return {**reads, "friction": [t.stitched, t.friction_partials]}


def check_history(ch: Client, truth: GroundTruth, imported: int, live: int) -> None:
    """History's journeys and drop-offs are the simulator's, its touchpoints flagged, its
    friction windows backfill and no alert raised."""
    persons = {person_id(j.person) for j in truth.journeys}
    got, want = outcomes(ch, persons), truth_outcomes(truth)
    assert got == want, (
        f"{sum((got - want).values())} unexpected, e.g. {list(got - want)[:3]}; "
        f"{sum((want - got).values())} missing, e.g. {list(want - got)[:3]}"
    )
    # No live customer dropped off (live time stayed live's), and history's drop-offs
    # are the simulator's.
    assert standing(ch) == truth_drops(truth)
    flags = {
        bool(flag): int(n)
        for flag, n in ch.query(
            "SELECT backfill, uniqExact(event_id) FROM touchpoints GROUP BY backfill"
        ).result_rows
    }
    assert flags == {True: imported, False: live}
    # History's friction windows (only history runs friction here) are backfill: learnt
    # from, never alerted on, through a checkout incident.
    query = "SELECT count(), min(backfill) FROM friction_windows"
    windows, backfill = ch.query(query).result_rows[0]
    assert windows > 0 and backfill
    assert ch.query("SELECT count() FROM alerts").result_rows[0][0] == 0


@pytest.mark.long  # about 3 minutes: `make test-long`; the short history tests run in make test
def test_two_days_imported_while_live_traffic_flows_give_the_true_journeys_and_keep_live_time(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "pipeline.log"
    history = history_settings(settings)
    ensure_topics(history)
    incident = Incident.parse("web:/checkout errors x8 @600m for 240m")
    config = SimConfig(customers=800, days=2, seed=41, incidents=(incident,))
    sim, truth = Simulation(config, PiiHasher(settings.pii)).run()
    events = [s.event for s in sim]
    started_ms = int(time.time() * 1000)  # live time can only be after this, less lateness
    # Live: the default idle advance (60 s), as in production.
    live_env = {"JOURNEYS_PROCESSOR__IDLE_AFTER_SECONDS": "60"}
    live = [journeys(settings, "process", s, log=log, **live_env) for s in ("ingest", "identity")]
    live.append(journeys(settings, "process", "journeys", log=log, **live_env))
    live.append(journeys(settings, "sink", log=log))
    processes += live
    served = lambda: reader_dsn(settings.clickhouse_dsn) != settings.clickhouse_dsn  # noqa: E731
    wait_for(served, 120, "the live sink to serve its folder", live, log)
    past = history_stages(settings, log, ("ingest", "identity", "journeys", "friction"))
    past.append(journeys(settings, "sink", "--history", log=log))
    processes += past
    port = free_port()
    collector = start_collector(settings, port, SOURCES, tmp_path / "collector.log")
    processes.append(collector)
    stop_live, live_ids = threading.Event(), list[str]()
    traffic = threading.Thread(target=live_traffic, args=(port, stop_live, live_ids))
    traffic.start()
    try:
        # Live time is the clock's before the import starts: imported through the live
        # domain, history would now be days behind it (late, or refused as too late).
        wait_for(lambda: live_time_known(settings), 240, "live journeys", live, log)
        import_history(port, events)
        # The import is done: history's time closes where the simulation's does.
        send_heartbeats(history, int(truth.closes_at.timestamp() * 1000))
        drain(history, history_reads(history), past, log)
    finally:
        stop_live.set()
        traffic.join(60)
    drain(settings, stage_topics(settings, "ingest", "identity", "journeys", "sink"), live, log)
    stop(past + live, log)
    reap(collector)
    with session(settings.clickhouse_dsn) as ch:
        check_history(ch, truth, len(events), len(live_ids))
    # Live time was never moved by history: every live watermark is the live clock's.
    lateness_ms = int(settings.processor.allowed_lateness.total_seconds() * 1000)
    marks = live_watermarks(settings)
    assert marks and min(marks) >= started_ms - lateness_ms - 1_000
    assert max(marks) <= int(time.time() * 1000)  # and never ahead of the clock
    # No imported event ever reached the live domain.
    live_raw = read_all(settings, Topics.from_settings(settings.topics).raw)
    on_live = {e["event_id"] for _k, v in live_raw for e in envelope.decode(v or b"").events}
    assert on_live == set(live_ids)
