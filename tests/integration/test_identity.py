"""Identity stitching end to end: simulated traffic -> ingest -> identity -> sink -> ClickHouse,
compared with the simulator's ground truth through the `touchpoints_latest` view, with one and
two identity workers, and across a SIGKILL of a worker mid-stream."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from producers.files import publisher
from producers.simulator.config import SimConfig
from producers.simulator.runner import simulate
from producers.simulator.truth import GroundTruth
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import session
from stream_processors.identity.core.records import person_id

from .helpers import (
    committed_some,
    drain,
    journeys,
    kill,
    stage_topics,
    stop,
    uncommitted_input,
    wait_for,
)

SHARED_KIOSK = "anonymous_id:kiosk-7"


def publish_conflicts(settings: Settings, base: GroundTruth) -> None:
    """A shared kiosk browser used by two customers (the later login must be refused), and
    junk identifiers that must link nothing."""
    start = base.start + timedelta(hours=1)
    rows: list[tuple[str, dict[str, Any]]] = []
    for n, (customer, minutes) in enumerate((("kiosk-a", 0), ("kiosk-b", 30))):
        rows.append(
            (
                f"customer_id:{customer}",
                {
                    "event_id": f"00000000-0000-4000-8000-{n:012d}",
                    "channel": "web",
                    "source": "web-shop",
                    "event_type": "login",
                    "schema_version": 1,
                    "occurred_at": (start + timedelta(minutes=minutes)).isoformat(),
                    "identity": {"customer_id": customer, "anonymous_id": "kiosk-7"},
                },
            )
        )
    for n, junk in enumerate(("undefined", "null", "guest")):
        rows.append(
            (
                f"customer_id:junk-{n}",
                {
                    "event_id": f"00000000-0000-4000-8001-{n:012d}",
                    "channel": "app",
                    "source": "ios",
                    "event_type": "login",
                    "schema_version": 1,
                    "occurred_at": (start + timedelta(minutes=40 + n)).isoformat(),
                    "identity": {"customer_id": f"junk-{n}", "device_id": junk},
                },
            )
        )
    pub = publisher(settings)
    for key, event in rows:
        pub.publish_fragment(key, orjson.dumps(event))
    assert pub.flush().failed == 0


def run_pipeline(
    settings: Settings, processes: list[Any], tmp_path: Path, workers: int, crash: bool
) -> tuple[GroundTruth, Path]:
    topics = Topics.from_settings(settings.topics)
    log = tmp_path / "pipeline.log"
    ingest = journeys(settings, "process", "ingest", log=log)
    sink = journeys(settings, "sink", log=log)
    identity = [
        journeys(
            settings,
            "process",
            "identity",
            log=log,
            JOURNEYS_PROCESSOR__WORKER_ID=f"{settings.processor.worker_id}-{n}",
        )
        for n in range(workers)
    ]
    processes += [ingest, sink, *identity]
    config = SimConfig(customers=20_000 if crash else 3_000, days=2, seed=17)
    truth_box: list[GroundTruth] = []
    feeder = threading.Thread(
        target=lambda: truth_box.append(
            simulate(settings, config, tmp_path / "truth.json", rate=4_000 if crash else None)
        )
    )
    feeder.start()
    if crash:
        group = settings.topics.group("identity")
        wait_for(
            lambda: committed_some(settings, group, topics.touchpoints),
            120,
            "the identity stage to commit",
            identity,
            log,
        )
        wait_for(
            lambda: uncommitted_input(settings, group, topics.touchpoints),
            60,
            "the identity stage to be behind the stream",
            identity,
            log,
        )
        assert feeder.is_alive(), "the stream ended before the kill: not mid-stream"
        kill(identity[0])
        identity[0] = journeys(
            settings,
            "process",
            "identity",
            log=log,
            JOURNEYS_PROCESSOR__WORKER_ID=f"{settings.processor.worker_id}-0",
        )
        processes.append(identity[0])
    feeder.join()
    truth = truth_box[0]
    publish_conflicts(settings, truth)
    watch = [ingest, sink, *identity]
    sink_topics = [
        topics.stitched,
        topics.identity_links,
        topics.identity_map,
        topics.identity_audit,
    ]
    stages = {**stage_topics(settings, "ingest", "identity"), "sink": sink_topics}
    drain(settings, stages, watch, log, timeout=180, passes=1)
    stop(watch, log)
    return truth, log


def check_against_truth(ch: Client, truth: GroundTruth) -> None:
    """Every identifier of every stored touchpoint resolves (latest id) to its true person."""
    expected = {key: person_id(p.person) for p in truth.persons for key in p.identifiers}
    seen: dict[str, set[str]] = defaultdict(set)
    rows = ch.query(
        "SELECT identity, latest_person_id FROM touchpoints_latest WHERE person_key NOT LIKE "
        "'%kiosk%' AND person_key NOT LIKE 'customer_id:junk-%'"
    ).result_rows
    for identity, person in rows:
        for name, value in identity.items():
            if value is not None:
                seen[f"{name}:{value}"].add(person)
    assert len(rows) == truth.events
    wrong = {k: v for k, v in seen.items() if v != {expected[k]}}
    assert not wrong, f"{len(wrong)} identifiers resolve to the wrong person: {list(wrong)[:5]}"
    assert set(seen) == set(expected)


def check_guards_and_audit(ch: Client) -> None:
    """The kiosk browser stays with the earlier customer; junk never links; each record once."""
    kiosk = ch.query(
        "SELECT DISTINCT person_key, latest_person_id FROM touchpoints_latest "
        "WHERE person_key LIKE 'customer_id:kiosk-%' ORDER BY person_key"
    ).result_rows
    assert kiosk == [
        ("customer_id:kiosk-a", person_id("customer_id:kiosk-a")),
        ("customer_id:kiosk-b", person_id("customer_id:kiosk-b")),
    ]
    overrides: dict[str, str] = {
        identifier: person
        for identifier, person in ch.query(
            "SELECT identifier, argMax(person_id, version) FROM identity_overrides "
            "GROUP BY identifier"
        ).result_rows
    }
    assert overrides[SHARED_KIOSK] == person_id("customer_id:kiosk-a")
    refusals = ch.query(
        "SELECT rule, identifiers, event_id FROM identity_audit FINAL "
        "WHERE kind = 'refusal' AND NOT retracted ORDER BY event_id"
    ).result_rows
    rules = sorted(r[0] for r in refusals)
    assert rules == ["customer_id_conflict", "denylist", "denylist", "denylist"], refusals
    conflict = next(r for r in refusals if r[0] == "customer_id_conflict")
    assert conflict[1] == ["customer_id:kiosk-b", SHARED_KIOSK]
    assert not {"device_id:undefined", "device_id:null", "device_id:guest"} & set(overrides)
    plain = ch.query("SELECT count() FROM identity_audit").result_rows[0][0]
    final = ch.query("SELECT count() FROM identity_audit FINAL").result_rows[0][0]
    assert plain == final > 0
    tp_plain = ch.query("SELECT count() FROM touchpoints").result_rows[0][0]
    tp_final = ch.query("SELECT count() FROM touchpoints FINAL").result_rows[0][0]
    assert tp_plain == tp_final


@pytest.mark.parametrize("workers", [1, 2])
def test_persons_in_clickhouse_match_the_simulator(
    workers: int, settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    truth, _log = run_pipeline(settings, processes, tmp_path, workers, crash=False)
    anonymous_then_login = [
        p
        for p in truth.persons
        if len(p.identifiers) > 1 and any(i.startswith("anonymous_id") for i in p.identifiers)
    ]
    phone_matched = [
        p
        for p in truth.persons
        if any(i.startswith("phone_hash") for i in p.identifiers)
        and any(i.startswith("customer_id") for i in p.identifiers)
    ]
    assert anonymous_then_login and phone_matched
    with session(settings.clickhouse_dsn) as ch:
        check_against_truth(ch, truth)
        check_guards_and_audit(ch)
        overrides = {
            r[0]
            for r in ch.query(
                "SELECT identifier FROM identity_overrides FINAL WHERE remapped"
            ).result_rows
        }
    # Only identifiers that do not name their person are overridden: the table stays small.
    named_otherwise = {k for p in truth.persons for k in p.identifiers if k != p.person}
    assert overrides - {SHARED_KIOSK} == named_otherwise

    shown = tmp_path / "show.txt"
    assert journeys(settings, "identity", "show", "customer_id:kiosk-b", log=shown).wait(60) == 0
    text = shown.read_text()
    assert f"person {person_id('customer_id:kiosk-b')}" in text
    assert "refusal (customer_id_conflict)" in text and SHARED_KIOSK in text


def test_a_worker_killed_mid_stream_changes_nothing(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    truth, _log = run_pipeline(settings, processes, tmp_path, workers=1, crash=True)
    with session(settings.clickhouse_dsn) as ch:
        check_against_truth(ch, truth)
        check_guards_and_audit(ch)
