"""The detection bench's scenarios: one simulated traffic, how its events reach the
pipeline, the incidents laid over it, and what an alert must name to count as finding one.

Traffic (`Traffic`): 30,000 customers of the simulator, 0.6 purchase journeys a day each
(and support journeys), with a day/night cycle (journey starts at 16:00 UTC are 5 times
those at 04:00) and weekends at 60% of a weekday; checkout converts 70%. Progress times are
bimodal: 70% of the customers who move on do so within minutes (log-normal, median 4
minutes), 30% take 35-85% of the stage's limit (21-51 minutes at checkout: the card
fetched, the bank app opened). At checkout that is about 5 to 36 journeys entering per
5-minute window from night to afternoon; the quiet touchpoint `app:product` has 8 to 14
exposures per window in the day.

Deliveries (`deliveries`): web and app events reach the collector 0-90 s after they
happen, contact-center events 0-3 minutes after, and store sales come in an hourly till
export (at :10, the hour before).

Every scenario shares the traffic up to its scored period (the warm-up is run once and the
pipeline's state forked), then lays its incident over the deliveries of the scored period:
it changes, removes or holds back events as the incident would (`Incident.apply`). Each
draws from its own fixed seed.

What counts as finding an incident (`Expect`) is written here from what the incident is,
not from the detector: an alert's series (its headline or one it groups) must have one of
the kinds at a scope matching one of the patterns, and it must fire after the incident
started and before `Scenario.found_by` past its end.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from producers.pii import PiiHasher
from producers.simulator.config import ProgressTimes, SimConfig
from producers.simulator.engine import SimEvent, Simulation
from schemas.settings import PiiSettings

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
Delivery = tuple[datetime, dict[str, Any]]  # (when it reaches the pipeline, the event)
Change = Callable[[random.Random, datetime, datetime, list[Delivery]], list[Delivery]]


@dataclass(frozen=True)
class Traffic:
    customers: int = 30_000
    warmup_days: float = 8.0
    scored_days: float = 7.0
    seed: int = 23
    progress_times: ProgressTimes = "bimodal"

    @property
    def scored_from(self) -> datetime:
        return START + timedelta(days=self.warmup_days)

    def config(self) -> SimConfig:
        return SimConfig(
            customers=self.customers,
            # Journeys started after the end still walk on: a margin keeps traffic steady.
            days=self.warmup_days + self.scored_days + 0.5,
            start=START,
            seed=self.seed,
            daily_cycle=5.0,
            weekend_share=0.6,
            stage_conversion={"discover": 0.85, "consider": 0.7, "cart": 0.8, "checkout": 0.7},
            progress_times=self.progress_times,
        )


@dataclass(frozen=True)
class Expect:
    """An alert finds the incident when one of its series has one of `kinds` (glob
    patterns: a detector's new kind of drop-off test still counts as drop-off) at a scope
    matching one of `scopes`."""

    kinds: tuple[str, ...]
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Incident:
    """From `start` (minutes into the scored period) for `minutes`, `change` rewrites the
    deliveries; `lands` (minutes) is when held-back rows arrive, if the incident holds any,
    and `held_from` when the holding began."""

    start: int
    minutes: int
    change: Change
    lands: int | None = None
    held_from: int | None = None  # when its rows start being held back, if before `start`

    def window(self, scored_from: datetime) -> tuple[datetime, datetime]:
        begin = scored_from + timedelta(minutes=self.start)
        return begin, begin + timedelta(minutes=self.minutes)


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    incident: Incident | None
    expect: Expect | None
    # Series an incident also moves (its consequences): alerts there are neither the
    # finding nor false while the incident and `found_by` last.
    consequences: tuple[str, ...] = ()
    scored_days: float = 0.75  # from midnight: the incidents happen in the afternoon
    found_by: timedelta = timedelta(hours=2)  # past the incident's end (or its rows' landing)
    # The traffic's progress times (`Traffic`): every scenario runs on the bimodal traffic
    # but one, the rise also run where movers are quick (the checkout: median
    # minutes), on a traffic and warm-up of its own.
    progress_times: ProgressTimes = "bimodal"


def _occurs(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def friction_at(channel: str, touchpoint: str, share: float, error: str) -> Change:
    """`share` of the touchpoint's events carry `error`."""

    def change(
        rng: random.Random, begin: datetime, end: datetime, d: list[Delivery]
    ) -> list[Delivery]:
        for _at, event in d:
            if (event["channel"], event["touchpoint"]) != (channel, touchpoint):
                continue
            if begin <= _occurs(event) < end and rng.random() < share:
                event["properties"] = {**event["properties"], "error": error}
        return d

    return change


def stalled_checkout(lost: float) -> Change:
    """Of the web journeys reaching checkout then, `lost` never complete their order there
    (their `order_completed` never happens); no error event anywhere."""

    def change(
        rng: random.Random, begin: datetime, end: datetime, d: list[Delivery]
    ) -> list[Delivery]:
        stalled = {
            e["session_id"]
            for _at, e in d
            if e["channel"] == "web"
            and e["event_type"] == "checkout_step"
            and begin <= _occurs(e) < end
            and rng.random() < lost
        }
        return [
            (at, e)
            for at, e in d
            if not (e["event_type"] == "order_completed" and e.get("session_id") in stalled)
        ]

    return change


def source_lost(channel: str, kept: float) -> Change:
    """Only `kept` of the channel's events are ever sent (0: the source stopped)."""

    def change(
        rng: random.Random, begin: datetime, end: datetime, d: list[Delivery]
    ) -> list[Delivery]:
        return [
            (at, e)
            for at, e in d
            if not (e["channel"] == channel and begin <= _occurs(e) < end and rng.random() >= kept)
        ]

    return change


def queue_waits_exported_late(factor: float, held_from: int, lands: int) -> Change:
    """Contact-center waits `factor` times longer; and the contact center's rows of
    `held_from`..`lands` minutes (into the day) arrive in one export at `lands`."""

    def change(
        rng: random.Random, begin: datetime, end: datetime, d: list[Delivery]
    ) -> list[Delivery]:
        day = begin.replace(hour=0, minute=0)
        hold = (day + timedelta(minutes=held_from), day + timedelta(minutes=lands))
        out = []
        for at, e in d:
            if e["channel"] != "call_center":
                out.append((at, e))
                continue
            when = _occurs(e)
            if begin <= when < end and "wait_seconds" in e["properties"]:
                wait = int(e["properties"]["wait_seconds"] * factor)
                e["properties"] = {**e["properties"], "wait_seconds": wait}
            out.append((hold[1], e) if hold[0] <= when < hold[1] else (at, e))
        return sorted(out, key=lambda pair: pair[0])

    return change


CHECKOUT_DROPOFF = ("dropoff*", "progress*", "stall*")
CHECKOUT_CONSEQUENCES = ("purchase:purchase:*", "web:/checkout/done", "web:*", "store:*")
APP_CONSEQUENCES = ("app:*", "purchase:*:app", "purchase:*:*", "support:*")
SCENARIOS = (
    Scenario(
        "friction spike, quiet touchpoint (app:product 3% -> 36% errors, 60 min)",
        seed=101,
        incident=Incident(840, 60, friction_at("app", "product", 0.34, "crash")),
        expect=Expect(("friction_spike",), ("app:product",)),
        consequences=("app:*",),
    ),
    Scenario(
        "silent stall at checkout (web progress 70% -> 5%, 60 min)",
        seed=102,
        incident=Incident(840, 60, stalled_checkout(0.93)),
        expect=Expect(CHECKOUT_DROPOFF, ("purchase:checkout:*",)),
        consequences=CHECKOUT_CONSEQUENCES,
    ),
    Scenario(
        "sustained drop-off rise at checkout (web 30% -> 72%, 20 min; movers' median 4 min)",
        seed=108,
        incident=Incident(840, 20, stalled_checkout(0.6)),
        expect=Expect(CHECKOUT_DROPOFF, ("purchase:checkout:*",)),
        consequences=CHECKOUT_CONSEQUENCES,
        found_by=timedelta(0),  # within its 20 minutes
        progress_times="quick",
    ),
    # The same rise where 30% of movers take half an hour (the bimodal traffic): by its 20th
    # minute the entrants' progressions carry under 3 nats of it, even for a likelihood ratio
    # that knows its start and size (README, "Detection quality"), so it is scored as found
    # when it is, and its delay is set against the 20 minutes in the README.
    Scenario(
        "sustained drop-off rise, slow movers too (as above; 30% of movers take 21-51 min)",
        seed=103,
        incident=Incident(840, 20, stalled_checkout(0.6)),
        expect=Expect(CHECKOUT_DROPOFF, ("purchase:checkout:*",)),
        consequences=CHECKOUT_CONSEQUENCES,
    ),
    Scenario(
        "volume drop of one source (app: 1 event in 10 sent, 60 min)",
        seed=104,
        incident=Incident(840, 60, source_lost("app", 0.1)),
        expect=Expect(("volume*",), ("app:mobile-app",)),
        consequences=APP_CONSEQUENCES,
    ),
    Scenario(
        "late export carrying a queue incident (waits x5, 60 min; rows 13:00-17:00 land 17:00)",
        seed=105,
        incident=Incident(
            840, 60, queue_waits_exported_late(5.0, 780, 1020), lands=1020, held_from=780
        ),
        expect=Expect(("friction_spike",), ("call_center:*",)),
        consequences=("call_center:*", "support:*"),
    ),
    Scenario(
        "source stops, back after 3 h (app sends nothing 13:00-16:00)",
        seed=106,
        incident=Incident(780, 180, source_lost("app", 0.0)),
        expect=Expect(("volume*",), ("app:mobile-app",)),
        consequences=APP_CONSEQUENCES,
    ),
    Scenario(
        "7 incident-free days (day/night 5x, weekend dip)",
        seed=107,
        incident=None,
        expect=None,
        scored_days=7.0,
    ),
)


@dataclass
class Simulated:
    """The shared traffic's events and their deliveries, in delivery order."""

    traffic: Traffic
    events: list[SimEvent]
    deliveries: list[Delivery] = field(default_factory=list)


def simulate(traffic: Traffic) -> Simulated:
    events, _truth = Simulation(traffic.config(), PiiHasher(PiiSettings())).run()
    rng = random.Random(traffic.seed)
    timed = [
        (_delivered(rng, sim.occurred_at, sim.event["channel"]), n, sim.event)
        for n, sim in enumerate(events)
    ]
    timed.sort(key=lambda d: (d[0], d[1]))
    return Simulated(traffic, events, [(at, event) for at, _n, event in timed])


def _delivered(rng: random.Random, at: datetime, channel: str) -> datetime:
    if channel == "store":
        hour = at.replace(minute=0, second=0, microsecond=0)
        return hour + timedelta(hours=1, minutes=10)
    most = 180.0 if channel == "call_center" else 90.0
    return at + timedelta(seconds=rng.uniform(0, most))


def scored_deliveries(sim: Simulated, scenario: Scenario) -> list[Delivery]:
    """The scored period's deliveries (copies: an incident changes its own), incident laid
    over them."""
    begin = sim.traffic.scored_from
    end = begin + timedelta(days=scenario.scored_days)
    out = [(at, dict(e)) for at, e in sim.deliveries if begin <= at < end]
    incident = scenario.incident
    if incident is None:
        return out
    window = incident.window(begin)
    return incident.change(random.Random(scenario.seed), window[0], window[1], out)
