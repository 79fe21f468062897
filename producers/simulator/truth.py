"""The simulator's ground truth: who is who, what each journey did, when incidents ran.

Tests compare the pipeline's results (and an independent recomputation from the emitted
events) with this file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from producers.simulator.config import Incident, SimConfig

if TYPE_CHECKING:
    from producers.simulator.engine import SimEvent

PRIORITY = ("customer_id", "loyalty_id", "email_hash", "phone_hash", "device_id", "anonymous_id")


class TruthStage(BaseModel):
    stage: str
    at: datetime
    channel: str


class TruthJourney(BaseModel):
    instance: str
    human: int
    definition: str
    anchor: str = ""  # one identifier of the journey's first event
    person: str = ""
    stages: list[TruthStage] = Field(default_factory=list)
    outcome: Literal["converted", "dropped_off"] | None = None
    dropped_stage: str | None = None
    dropped_at: datetime | None = None


class TruthPerson(BaseModel):
    person: str  # the component's highest-priority identifier
    human: int
    identifiers: list[str]


class TruthIncident(BaseModel):
    incident: Incident
    starts_at: datetime
    ends_at: datetime


class GroundTruth(BaseModel):
    seed: int
    start: datetime
    end: datetime
    closes_at: datetime  # every deadline has passed by then
    events: int
    events_per_channel: dict[str, int]
    persons: list[TruthPerson]
    journeys: list[TruthJourney]
    incidents: list[TruthIncident]

    @classmethod
    def build(
        cls,
        config: SimConfig,
        links: list[list[set[str]]],
        journeys: list[TruthJourney],
        events: list[SimEvent],
    ) -> GroundTruth:
        persons: list[TruthPerson] = []
        owner: dict[str, str] = {}
        for human, sets in enumerate(links):
            for component in components(sets):
                key = person_key(component)
                persons.append(TruthPerson(person=key, human=human, identifiers=sorted(component)))
                owner.update(dict.fromkeys(component, key))
        for journey in journeys:
            # "": a journey whose first event was never sent (a `lost` or `off` incident).
            journey.person = owner.get(journey.anchor, "")
        ends = [j.dropped_at or j.stages[-1].at for j in journeys] or [config.end]
        return cls(
            seed=config.seed,
            start=config.start,
            end=config.end,
            closes_at=max([*ends, config.end]) + timedelta(minutes=1),
            events=len(events),
            events_per_channel=dict(Counter(e.event["channel"] for e in events)),
            persons=sorted(persons, key=lambda p: p.person),
            journeys=journeys,
            incidents=[
                TruthIncident(incident=i, starts_at=w[0], ends_at=w[1])
                for i in config.incidents
                for w in [i.window(config.start)]
            ],
        )


def components(sets: Iterable[set[str]]) -> list[set[str]]:
    """Connected components of identifiers that appeared together."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for group in sets:
        first, *rest = sorted(group)
        for other in rest:
            parent[find(other)] = find(first)
        find(first)
    grouped: dict[str, set[str]] = {}
    for ident in parent:
        grouped.setdefault(find(ident), set()).add(ident)
    return list(grouped.values())


def person_key(component: Iterable[str]) -> str:
    """The highest-priority identifier of a component, then the smallest value."""
    return min(component, key=lambda i: (PRIORITY.index(i.split(":", 1)[0]), i))
