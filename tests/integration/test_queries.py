"""`journeys query` against the simulator's ground truth, on the real broker and chDB: the
pipeline (ingest, identity, journeys, sink) replays two simulated days, then the CLI, run as a
separate process while the sink still holds the folder (so it reads through the sink's live
interface), must give the true funnel and drop-offs per stage and stage channel (where the
stage was reached), and the whole timeline of a customer seen on all four channels."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from producers.simulator.config import Incident, SimConfig
from producers.simulator.runner import simulate
from producers.simulator.truth import GroundTruth
from schemas.settings import Settings

from .helpers import ROOT, drain, env_for, journeys, stage_topics, stop

Key = tuple[str, str, str]  # definition, stage, stage channel


def query(settings: Settings, *args: str) -> list[dict[str, Any]]:
    """`journeys query ARGS --format json`, as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "query", *args, "--format", "json"],
        env=env_for(settings),
        cwd=ROOT,
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rows: list[dict[str, Any]] = orjson.loads(done.stdout)
    return rows


def truth_funnel(truth: GroundTruth) -> Counter[Key]:
    return Counter((j.definition, s.stage, s.channel) for j in truth.journeys for s in j.stages)


def truth_dropoffs(truth: GroundTruth) -> Counter[Key]:
    return Counter(
        (j.definition, str(j.dropped_stage), j.stages[-1].channel)
        for j in truth.journeys
        if j.dropped_at is not None
    )


def events_of(events: Path, truth: GroundTruth, person: str) -> list[dict[str, Any]]:
    """The simulated events of one true person (by the identifiers they carried)."""
    mine = set(next(p.identifiers for p in truth.persons if p.person == person))
    found = []
    for line in events.read_bytes().splitlines():
        event = orjson.loads(line)
        if {f"{k}:{v}" for k, v in event["identity"].items()} & mine:
            found.append(event)
    return found


def test_query_funnel_dropoffs_and_person_give_the_ground_truth(
    settings: Settings, processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "pipeline.log"
    events = tmp_path / "events.jsonl"
    # Seed 31 has one customer seen on all four channels (web, app, call center, store).
    config = SimConfig(
        customers=1_500,
        days=2,
        seed=31,
        incidents=(Incident.parse("web:/checkout errors x8 @600m for 240m"),),
    )
    truth = simulate(settings, config, None, write=events)
    watch = [journeys(settings, "process", s, log=log) for s in ("ingest", "identity", "journeys")]
    watch.append(journeys(settings, "sink", log=log))
    processes.extend(watch)
    replay = journeys(
        settings, "publish", str(events), "--close-at", truth.closes_at.isoformat(), log=log
    )
    assert replay.wait(timeout=300) == 0, log.read_text()[-3000:]
    drain(settings, stage_topics(settings, "ingest", "identity", "journeys", "sink"), watch, log)

    funnel = query(settings, "funnel", "--by", "stage_channel")
    got = Counter(
        {(r["definition"], r["stage"], r["stage_channel"]): r["journeys"] for r in funnel}
    )
    assert got == truth_funnel(truth)
    # In the definitions' stage order (journey_definitions, recorded by the sink).
    purchase = [r["stage"] for r in funnel if r["definition"] == "purchase"]
    assert list(dict.fromkeys(purchase)) == ["discover", "consider", "cart", "checkout", "purchase"]

    dropoffs = query(settings, "dropoffs", "--by", "stage_channel")
    got = Counter(
        {(r["definition"], r["stage"], r["stage_channel"]): r["dropped"] for r in dropoffs}
    )
    assert got == truth_dropoffs(truth)

    four = [
        p.person
        for p in truth.persons
        if len({e["channel"] for e in events_of(events, truth, p.person)}) == 4
    ]
    assert four, "the traffic must include a customer seen on all four channels"
    timeline = query(settings, "person", four[0])
    touchpoints = [r for r in timeline if r["kind"] == "touchpoint"]
    assert sorted(r["ref"] for r in touchpoints) == sorted(
        e["event_id"] for e in events_of(events, truth, four[0])
    )
    assert [r["at"] for r in touchpoints] == sorted(r["at"] for r in touchpoints)
    assert {r["channel"] for r in touchpoints} == {"web", "app", "call_center", "store"}
    assert {"stage", "journey"} <= {r["kind"] for r in timeline}
    # Ad-hoc SQL, read-only, through the running sink's interface too.
    (total,) = query(settings, "sql", "SELECT count() AS n FROM touchpoints")
    assert int(total["n"]) == truth.events
    stop(watch, log)
