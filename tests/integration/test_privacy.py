"""Export, erasure and staying erased, end to end on the real broker and chDB: a customer seen
on web, app, call center and store is exported, erased beside a running pipeline, then their
old events are replayed and new ones sent; nothing of them is left in ClickHouse, in the
compacted topics or in stage state (the friction stage's example journeys included), the
others' journeys are as they were, the alerts written after the erasure show none of them,
and the replayed and new events are dead-lettered as `erased_person`."""

from __future__ import annotations

import subprocess
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from deploy.cli import main
from producers.pii import PiiHasher
from producers.simulator.config import SimConfig
from producers.simulator.engine import SimEvent, Simulation
from producers.simulator.runner import publish_events, send_heartbeats
from producers.simulator.truth import GroundTruth
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import reading

from .helpers import dead_letters, drain, env_for, journeys, read_all, stage_topics, stop

PERSON_TABLES = (
    "touchpoints",
    "identity_links",
    "journeys",
    "journey_transitions",
    "dropoffs",
    "journey_retractions",
    "sessions",
)


def simulated(settings: Settings) -> tuple[list[SimEvent], GroundTruth, str]:
    """A small simulation, and a customer of it seen on every channel: the one with a
    customer id seen on most channels, given a copy of another customer's event (under their
    own customer id) on each channel they missed."""
    config = SimConfig(customers=120, days=1, seed=3, app_share=0.6, store_purchase_share=0.6)
    events, truth = Simulation(config, PiiHasher(settings.pii)).run()
    owner = {k: p.person for p in truth.persons for k in p.identifiers}
    channels: dict[str, set[str]] = defaultdict(set)
    for sim in events:
        for key in keys_of(sim.event):
            channels[owner[key]].add(sim.event["channel"])
    subject = max(
        (p for p in channels if p.startswith("customer_id:")),
        key=lambda p: (len(channels[p]), p),
    )
    added = []
    for channel in sorted({"web", "app", "call_center", "store"} - channels[subject]):
        model = next(s for s in events if s.event["channel"] == channel)
        event = {**model.event, "event_id": str(uuid.uuid4())}
        event["identity"] = {"customer_id": subject.removeprefix("customer_id:")}
        added.append(SimEvent(model.occurred_at, subject, event))
    # Friction they met in the last hour: example journeys of theirs in the friction stage's
    # state when the erasure runs (the detector's context, a partition's open window).
    model = next(s for s in events if s.event["channel"] == "web")
    for before in (timedelta(minutes=30), timedelta(milliseconds=1)):
        event = {**model.event, "event_id": str(uuid.uuid4()), "touchpoint": "/checkout"}
        event["event_type"] = "checkout_step"
        event["identity"] = {"customer_id": subject.removeprefix("customer_id:")}
        event["occurred_at"] = (truth.closes_at - before).isoformat()
        event["properties"] = {"error": "http_500"}
        added.append(SimEvent(truth.closes_at - before, subject, event))
    return sorted([*events, *added], key=lambda s: s.occurred_at), truth, subject


def keys_of(event: dict[str, Any]) -> list[str]:
    return [f"{k}:{v}" for k, v in event["identity"].items() if v]


def latest(records: list[tuple[Any, bytes | None]]) -> dict[str, bytes | None]:
    """What a compacted topic holds per key once compacted: its last value (None: deleted)."""
    held: dict[str, bytes | None] = {}
    for key, value in records:
        if key is not None:
            held[key.decode(errors="replace")] = value
    return held


def others_journeys(settings: Settings, erased: set[str]) -> list[tuple[Any, ...]]:
    with reading(settings.clickhouse_dsn) as ch:
        rows = ch.query(
            "SELECT journey_id, person_id, status, stage, stages, version FROM journeys FINAL "
            "WHERE person_id NOT IN {p:Array(String)} ORDER BY journey_id",
            parameters={"p": sorted(erased)},
        ).result_rows
    return [tuple(r) for r in rows]


def test_an_erased_customer_is_gone_everywhere_and_stays_gone(
    settings: Settings,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = Topics.from_settings(settings.topics)
    events, truth, subject = simulated(settings)
    closes_ms = int(truth.closes_at.timestamp() * 1000)
    log = tmp_path / "pipeline.log"
    names = ("ingest", "identity", "journeys", "friction")
    stages = [journeys(settings, "process", s, log=log) for s in names]
    sink = journeys(settings, "sink", log=log)
    watch = [*stages, sink]
    processes += watch
    everything = {**stage_topics(settings, *names, "sink")}
    publish_events(settings, events, None)
    send_heartbeats(settings, closes_ms)
    drain(settings, everything, watch, log, timeout=180)

    # The commands in this process (no interpreter to start): the sink serves ClickHouse.
    for name, value in env_for(settings).items():
        if name.startswith("JOURNEYS_"):
            monkeypatch.setenv(name, value)
    exported = tmp_path / "export.json"
    assert main(["privacy", "export", "--identifier", subject, "--output", str(exported)]) == 0
    held = orjson.loads(exported.read_bytes())
    persons, identifiers = set(held["persons"]), set(held["identifiers"])
    assert subject in identifiers and persons
    touchpoints = held["tables"]["touchpoints"]
    assert {t["channel"] for t in touchpoints} == {"web", "app", "call_center", "store"}
    assert held["tables"]["journeys"] and held["tables"]["identity_links"]
    before = others_journeys(settings, persons)
    assert held_in_friction(settings, persons), "no example of theirs to erase: test is moot"
    alerts_before = len(read_all(settings, topics.alerts))

    assert main(["privacy", "erase", "--identifier", subject, "--requested-by", "dpo"]) == 0

    # Their old events again (a replay of raw), and new ones under every identifier of theirs.
    theirs = [s for s in events if set(keys_of(s.event)) & identifiers]
    fresh = []
    for n, sim in enumerate(theirs[:4]):
        event = {**sim.event, "event_id": str(uuid.uuid4())}
        event["occurred_at"] = (truth.closes_at + timedelta(seconds=n)).isoformat()
        fresh.append(SimEvent(sim.occurred_at, sim.key, event))
    publish_events(settings, [*theirs, *fresh], None)
    # Moves every stage, so each applies the list; a window closes, so the detector hears too.
    send_heartbeats(settings, closes_ms + int(settings.friction.window.total_seconds() * 1000))
    drain(settings, everything, watch, log, timeout=180)
    stop(watch, log)

    dropped = [
        d for d in dead_letters(settings, topics.dlq_ingest) if d["reason"] == "erased_person"
    ]
    assert sorted(d["event_id"] for d in dropped) == sorted(
        s.event["event_id"] for s in [*theirs, *fresh]
    )
    assert all(d["raw"] == "" for d in dropped)
    check_clickhouse(settings, persons, identifiers, len(touchpoints))
    text = orjson.dumps(read_all(settings, topics.privacy_audit), default=str)
    assert subject.encode() not in text and all(i.encode() not in text for i in identifiers)
    assert others_journeys(settings, persons) == before
    check_topics_and_state(settings, persons, identifiers)
    assert not held_in_friction(settings, persons)
    later = [v for _k, v in read_all(settings, topics.alerts)[alerts_before:] if v is not None]
    assert not [a for a in later if any(n.encode() in a for n in persons)]


def held_in_friction(settings: Settings, persons: set[str]) -> list[str]:
    """The keys of the friction stage's changelogs (partition windows, detector) whose last
    value names one of `persons` (an example journey, remembered contacts)."""
    topics = Topics.from_settings(settings.topics)
    found = []
    for table in ("windows", "detector"):
        held = latest(read_all(settings, topics.changelog("friction", table)))
        found += [
            f"{table}:{k}"
            for k, v in held.items()
            if v is not None and any(p.encode() in k.encode() + v for p in persons)
        ]
    return found


def check_clickhouse(
    settings: Settings, persons: set[str], identifiers: set[str], touchpoints: int
) -> None:
    """No row of theirs in any table; one audit record, counting what it removed."""
    params = {"p": sorted(persons), "i": sorted(identifiers)}
    where = {table: "person_id IN {p:Array(String)}" for table in PERSON_TABLES}
    where["identity_overrides"] = (
        "identifier IN {i:Array(String)} OR person_id IN {p:Array(String)}"
    )
    where["identity_audit"] = (
        "person_id IN {p:Array(String)} OR hasAny(identifiers, {i:Array(String)})"
    )
    with reading(settings.clickhouse_dsn) as ch:
        left = {
            table: ch.query(
                f"SELECT count() FROM {table} WHERE {w}", parameters=params
            ).result_rows[0][0]
            for table, w in where.items()
        }
        audit = ch.query("SELECT requested_by, removed FROM privacy_audit").result_rows
    assert not any(left.values()), left
    assert len(audit) == 1 and audit[0][0] == "dpo"
    assert audit[0][1]["touchpoints"] == touchpoints


def check_topics_and_state(settings: Settings, persons: set[str], identifiers: set[str]) -> None:
    """The last word on each key of the compacted topics and the stages' changelogs names
    none of them; the suppression list holds each of them, as a hash only."""
    topics = Topics.from_settings(settings.topics)
    mapped = latest(read_all(settings, topics.identity_map))
    assert all(mapped.get(k) is None for k in identifiers)
    names = [k.encode() for k in (*persons, *identifiers)]
    for stage, table in [
        ("identity", "routed"),
        ("identity", "links"),
        ("journeys", "persons"),
        ("journeys", "merges"),
        ("journeys", "handoff"),
    ]:
        held = latest(read_all(settings, topics.changelog(stage, table)))
        theirs = [
            k for k, v in held.items() if v is not None and any(n in k.encode() + v for n in names)
        ]
        assert not theirs, f"{stage}.{table} still holds {theirs}"
    suppressed = latest(read_all(settings, topics.privacy_suppressions))
    assert len(suppressed) == len(persons) + len(identifiers)
    assert not any(n in (v or b"") for v in suppressed.values() for n in names)
