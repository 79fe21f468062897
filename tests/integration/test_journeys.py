"""Journeys end to end: simulated traffic -> ingest -> identity -> journeys -> sink ->
ClickHouse, compared with the simulator's ground truth: the outcome of every journey (with
its person, after identity merges), and the drop-offs per stage and channel. Once replayed
from a file as fast as possible, once published at a rate with the call-center and store
events held back and arriving as a late batch, whose progress must retract drop-offs."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from producers.pii import PiiHasher
from producers.simulator.config import Incident, SimConfig
from producers.simulator.engine import Simulation
from producers.simulator.runner import publish_events, send_heartbeats, simulate
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

LATE = ("store", "call_center")
Outcome = tuple[str, str, tuple[str, ...], str]
Drop = tuple[str, str, int]


def config(seed: int) -> SimConfig:
    return SimConfig(
        customers=1_500,
        days=2,
        seed=seed,
        incidents=(Incident.parse("web:/checkout errors x8 @600m for 240m"),),
    )


def start(
    settings: Settings, processes: list[Any], log: Path, workers: int = 1, /, **env: str
) -> list[subprocess.Popen[bytes]]:
    """ingest, identity, `workers` journeys workers (from index 2), then the sink (last)."""
    started = [
        journeys(settings, "process", stage, log=log, **env) for stage in ("ingest", "identity")
    ]
    worker = settings.processor.worker_id
    started += [
        journeys(
            settings,
            "process",
            "journeys",
            log=log,
            JOURNEYS_PROCESSOR__WORKER_ID=f"{worker}-j{n}",
            **env,
        )
        for n in range(workers)
    ]
    started.append(journeys(settings, "sink", log=log))
    processes += started
    return started


def drain_all(settings: Settings, watch: list[subprocess.Popen[bytes]], log: Path) -> None:
    """Wait until every stage and the sink have committed everything before them (twice
    over: handoffs are written by the stage that reads them)."""
    drain(settings, stage_topics(settings, "ingest", "identity", "journeys", "sink"), watch, log)


def outcomes(ch: Client) -> Counter[Outcome]:
    rows = ch.query(
        "SELECT latest_person_id, definition_id, stages.1, status FROM journeys_latest "
        "WHERE status != 'merged'"
    ).result_rows
    return Counter((p, d, tuple(stages), status) for p, d, stages, status in rows)


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


def drops_per_stage_and_channel(ch: Client) -> Counter[tuple[str, str, str]]:
    """Standing drop-offs by the stage and the channel the journey reached it on."""
    rows = ch.query(
        "SELECT d.definition_id, d.stage, tupleElement(arrayElement(j.stages, -1), 3), count() "
        "FROM dropoffs_standing AS d INNER JOIN (SELECT * FROM journeys FINAL) AS j "
        "USING (journey_id) GROUP BY 1, 2, 3"
    ).result_rows
    return Counter({(d, s, c): n for d, s, c, n in rows})


def truth_per_stage_and_channel(truth: GroundTruth) -> Counter[tuple[str, str, str]]:
    return Counter(
        (j.definition, str(j.dropped_stage), j.stages[-1].channel)
        for j in truth.journeys
        if j.dropped_at is not None
    )


def check(ch: Client, truth: GroundTruth) -> None:
    got, want = outcomes(ch), truth_outcomes(truth)
    assert got == want, (
        f"{sum((got - want).values())} unexpected outcomes, e.g. {list(got - want)[:3]}; "
        f"{sum((want - got).values())} missing, e.g. {list(want - got)[:3]}"
    )
    assert standing(ch) == truth_drops(truth)
    assert drops_per_stage_and_channel(ch) == truth_per_stage_and_channel(truth)
    # A drop-off names the friction signals its journey met exactly when it counted some.
    mismatched, named = ch.query(
        "SELECT countIf((friction > 0) != notEmpty(signals)), countIf(notEmpty(signals)) "
        "FROM dropoffs_standing"
    ).result_rows[0]
    assert mismatched == 0 and named > 0
    # Redelivery never double-counts: every table holds each key once.
    for table, key in (
        ("journeys", "journey_id"),
        ("dropoffs", "dropoff_id"),
        ("journey_transitions", "transition_id"),
    ):
        plain, distinct = ch.query(f"SELECT count(), uniqExact({key}) FROM {table}").result_rows[0]
        final = ch.query(f"SELECT count() FROM {table} FINAL").result_rows[0][0]
        assert final == distinct <= plain, table


# One worker runs in `make test-long` only: two cover the same and the hand-overs besides.
@pytest.mark.parametrize("workers", [pytest.param(1, marks=pytest.mark.long), 2])
def test_a_replay_from_a_file_gives_the_true_journeys(
    workers: int, settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "pipeline.log"
    events = tmp_path / "events.jsonl"
    truth = simulate(settings, config(23), None, write=events)
    logged_in_later = {
        p.person
        for p in truth.persons
        if any(i.startswith("anonymous_id") for i in p.identifiers)
        and any(i.startswith("customer_id") for i in p.identifiers)
    }
    begun_anonymously = [
        j
        for j in truth.journeys
        if j.anchor.startswith("anonymous_id") and j.person in logged_in_later
    ]
    assert begun_anonymously, "the traffic must include journeys begun before a login"
    watch = start(settings, processes, log, workers)
    replay = journeys(
        settings, "publish", str(events), "--close-at", truth.closes_at.isoformat(), log=log
    )
    assert replay.wait(timeout=300) == 0, log.read_text()[-3000:]
    drain_all(settings, watch, log)
    stop(watch, log)
    with session(settings.clickhouse_dsn) as ch:
        check(ch, truth)
        sessions = ch.query("SELECT count(), countIf(task_completed) FROM sessions FINAL")
    total, completed = sessions.result_rows[0]
    assert total > 0 and 0 < completed < total


def test_a_late_store_and_call_center_batch_retracts_drop_offs_across_a_crash(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "pipeline.log"
    # The late batch lands days behind the watermark: keep journeys correctable that long.
    events, truth = Simulation(config(29), PiiHasher(settings.pii)).run()
    timely = [e for e in events if e.event["channel"] not in LATE]
    late = [e for e in events if e.event["channel"] in LATE]
    assert late and timely
    env = {"JOURNEYS_JOURNEYS__LATE_TOLERANCE": "P10D"}
    watch = start(settings, processes, log, **env)
    closes = int(truth.closes_at.timestamp() * 1000)
    # State survives a crash: once the journeys worker has committed some input, kill it
    # while the stream goes on (it holds up to a commit interval of uncommitted work).
    head, rest = timely[: len(timely) // 10], timely[len(timely) // 10 :]
    publish_events(settings, head, rate=None)
    stitched, group = Topics.from_settings(settings.topics).stitched, settings.topics.group
    wait_for(
        lambda: committed_some(settings, group("journeys"), stitched),
        120,
        "the journeys stage to commit",
        watch,
        log,
    )
    feeder = threading.Thread(target=publish_events, args=(settings, rest, 400))
    feeder.start()
    wait_for(
        lambda: uncommitted_input(settings, group("journeys"), stitched),
        60,
        "the journeys stage to have uncommitted input",
        watch,
        log,
    )
    assert feeder.is_alive(), "the stream ended before the kill: not mid-stream"
    kill(watch[2])
    same_id = f"{settings.processor.worker_id}-j0"  # fences the killed one's transaction
    watch[2] = journeys(
        settings, "process", "journeys", log=log, JOURNEYS_PROCESSOR__WORKER_ID=same_id, **env
    )
    processes.append(watch[2])
    feeder.join()
    send_heartbeats(settings, closes)
    drain_all(settings, watch, log)
    # The sink holds the embedded ClickHouse: stop it to look, then start another.
    stop([watch.pop()], log)
    with session(settings.clickhouse_dsn) as ch:
        before = standing(ch)
    watch.append(journeys(settings, "sink", log=log))
    processes.append(watch[-1])
    # Without the store purchases and the calls, more journeys look dropped than truly are.
    assert sum(before.values()) > sum(truth_drops(truth).values())
    publish_events(settings, late, rate=None)
    send_heartbeats(settings, closes)
    drain_all(settings, watch, log)
    stop(watch, log)
    with session(settings.clickhouse_dsn) as ch:
        check(ch, truth)
        reasons: dict[str, int] = {
            reason: n
            for reason, n in ch.query(
                "SELECT reason, count() FROM journey_retractions FINAL "
                "WHERE retracted = 'dropped_off' GROUP BY reason"
            ).result_rows
        }
        after = standing(ch)
    assert reasons.get("late_event", 0) > 0, reasons
    assert sum(after.values()) < sum(before.values())


def test_two_workers_one_killed_mid_stream_and_restarted_give_the_true_journeys(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    """A rebalance back and forth: partitions move to the surviving worker when one is
    SIGKILLed mid-stream, and back when it returns 15 s later; no journey ends differently.
    Each takeover reads `identity-merges` well ahead of the `stitched` backlog, so merges
    come before the old persons' events, which must still be forwarded."""
    log = tmp_path / "pipeline.log"
    watch = start(settings, processes, log, 2)
    box: list[GroundTruth] = []
    feeder = threading.Thread(
        target=lambda: box.append(
            simulate(settings, config(37).model_copy(update={"customers": 6_000}), None, rate=1_500)
        )
    )
    feeder.start()
    stitched, group = Topics.from_settings(settings.topics).stitched, settings.topics.group
    wait_for(
        lambda: committed_some(settings, group("journeys"), stitched),
        120,
        "the journeys stage to commit",
        watch,
        log,
    )
    wait_for(
        lambda: uncommitted_input(settings, group("journeys"), stitched),
        60,
        "the journeys stage to have uncommitted input",
        watch,
        log,
    )
    assert feeder.is_alive(), "the stream ended before the kill: not mid-stream"
    kill(watch[2])
    time.sleep(15)  # the survivor takes its partitions over meanwhile
    watch[2] = journeys(
        settings,
        "process",
        "journeys",
        log=log,
        JOURNEYS_PROCESSOR__WORKER_ID=f"{settings.processor.worker_id}-j0",
    )
    processes.append(watch[2])
    feeder.join()
    drain_all(settings, watch, log)
    stop(watch, log)
    with session(settings.clickhouse_dsn) as ch:
        check(ch, box[0])
