"""The simulator's ground truth, recomputed from the events it published by a small reference
implementation written here (persons by union of identifiers, outcomes by the stage rules)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from producers.simulator.config import Incident, SimConfig
from producers.simulator.runner import simulate
from producers.simulator.truth import GroundTruth
from schemas.settings import Settings
from schemas.topics import Topics
from schemas.touchpoint import Touchpoint

from .helpers import read_all

# The stage rules, written out independently of the simulator's catalog.
RULES: dict[str, tuple[dict[str, int], list[timedelta]]] = {
    "purchase": (
        {
            "home_view": 0,
            "search": 0,
            "product_view": 1,
            "add_to_cart": 2,
            "checkout_step": 3,
            "order_completed": 4,
            "pos_purchase": 4,
        },
        [timedelta(hours=24), timedelta(hours=48), timedelta(hours=24), timedelta(hours=1)],
    ),
    "support": (
        {"help_view": 0, "contact_queued": 1, "contact_ended:resolved": 2},
        [timedelta(hours=48), timedelta(hours=24)],
    ),
}
STAGE_NAMES = {
    "purchase": ["discover", "consider", "cart", "checkout", "purchase"],
    "support": ["issue", "contact", "resolved"],
}
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+\.[\w.]+")
PHONE = re.compile(rb"\+\d{7,15}\b|\(\d{3}\) ?\d{3}-\d{4}|\b\d{3}-\d{3}-\d{4}\b")


@dataclass
class Open:
    stage: int
    entered: datetime
    reached: list[str]


def reference_persons(events: list[dict[str, Any]]) -> dict[str, frozenset[str]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for event in events:
        ids = [f"{k}:{v}" for k, v in event["identity"].items() if v]
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
        find(ids[0])
    groups: dict[str, set[str]] = {}
    for ident in parent:
        groups.setdefault(find(ident), set()).add(ident)
    return {i: frozenset(g) for g in groups.values() for i in g}


def stage_of(definition: str, event: dict[str, Any]) -> int | None:
    table = RULES[definition][0]
    name = event["event_type"]
    if name == "contact_ended" and event["properties"].get("disposition") == "resolved":
        name = "contact_ended:resolved"
    return table.get(name)


def reference_outcomes(events: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    person_of = reference_persons(events)
    by_person: dict[frozenset[str], list[dict[str, Any]]] = {}
    for event in events:
        first = next(f"{k}:{v}" for k, v in event["identity"].items() if v)
        by_person.setdefault(person_of[first], []).append(event)
    out: Counter[tuple[Any, ...]] = Counter()
    for person, mine in by_person.items():
        mine.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
        for definition, (_table, limits) in RULES.items():
            names = STAGE_NAMES[definition]
            current: Open | None = None
            for event in mine:
                at = datetime.fromisoformat(event["occurred_at"])
                if current and at > current.entered + limits[current.stage]:
                    out[(person, definition, tuple(current.reached), "dropped_off")] += 1
                    current = None
                idx = stage_of(definition, event)
                if idx is None:
                    continue
                if current is None:
                    if idx == 0:
                        current = Open(0, at, [names[0]])
                elif idx > current.stage:
                    current = Open(idx, at, [*current.reached, names[idx]])
                if current and current.stage == len(names) - 1:
                    out[(person, definition, tuple(current.reached), "converted")] += 1
                    current = None
            if current:
                out[(person, definition, tuple(current.reached), "dropped_off")] += 1
    return out


def test_simulator_truth_matches_an_independent_recomputation(
    settings: Settings, tmp_path: Path
) -> None:
    config = SimConfig(
        customers=400,
        days=2,
        seed=5,
        incidents=(
            Incident.parse("web:/checkout errors x8 @600m for 120m"),
            Incident.parse("call_center:queue:support waits x5 @900m for 60m"),
        ),
    )
    truth = simulate(settings, config, tmp_path / "truth.json", rate=None)
    assert GroundTruth.model_validate_json((tmp_path / "truth.json").read_text()) == truth

    records = read_all(settings, Topics.from_settings(settings.topics).raw)
    events: list[dict[str, Any]] = []
    heartbeats: list[int] = []
    for _key, value in records:
        assert value is not None
        assert not EMAIL.search(value) and not PHONE.search(value), value[:300]
        doc = orjson.loads(value)
        events += doc["events"]
        if not doc["events"]:
            heartbeats.append(doc["watermark"])
    assert len(events) == truth.events
    assert set(Counter(e["channel"] for e in events)) == {"web", "app", "call_center", "store"}
    for event in events:
        Touchpoint.model_validate(event)
    assert len(heartbeats) == settings.topics.partitions
    assert min(heartbeats) >= int(truth.closes_at.timestamp() * 1000)

    persons = reference_persons(events)
    assert set(persons.values()) == {frozenset(p.identifiers) for p in truth.persons}
    anonymous_then_login = [
        p
        for p in truth.persons
        if any(i.startswith("anonymous_id") for i in p.identifiers)
        and any(i.startswith("customer_id") for i in p.identifiers)
    ]
    phone_matched = [
        p
        for p in truth.persons
        if any(i.startswith("phone_hash") for i in p.identifiers)
        and any(i.startswith("customer_id") for i in p.identifiers)
    ]
    assert anonymous_then_login and phone_matched

    by_person = {p.person: frozenset(p.identifiers) for p in truth.persons}
    expected: Counter[tuple[Any, ...]] = Counter(
        (by_person[j.person], j.definition, tuple(s.stage for s in j.stages), j.outcome)
        for j in truth.journeys
    )
    assert reference_outcomes(events) == expected
    outcomes = Counter(j.outcome for j in truth.journeys)
    assert outcomes["converted"] > 0 and outcomes["dropped_off"] > 0
