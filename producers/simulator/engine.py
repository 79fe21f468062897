"""The simulation itself: customers walking through purchase and support journeys across web,
app, call center and store. Pure and deterministic for a seed: it returns the events (in event
time order) and the ground truth it built them from; it never touches Kafka.

Identity is emitted as a real system would see it: anonymous browsing carries only a cookie
until a login links it to the account; calls carry a phone hash (and the account only when the
caller authenticated); store purchases carry the loyalty card and the account.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from producers.pii import PiiHasher
from producers.simulator.catalog import FRICTION, JOURNEYS, PURCHASE, SUPPORT, Journey, Stage
from producers.simulator.config import Incident, SimConfig
from producers.simulator.truth import GroundTruth, TruthJourney, TruthStage

SOURCES = {"web": "web-shop", "app": "mobile-app", "call_center": "contact-center", "store": "pos"}


@dataclass
class Human:
    """One simulated customer and the identifiers they own."""

    idx: int
    customer_id: str | None
    cookies: list[str]
    device_id: str | None
    email_hash: str
    phone_hash: str
    loyalty_id: str | None
    phone_linked: bool = False
    links: list[set[str]] = field(default_factory=list)


@dataclass(slots=True)
class SimEvent:
    occurred_at: datetime
    key: str
    event: dict[str, Any]


class Simulation:
    """Builds events and ground truth for one configuration."""

    def __init__(self, config: SimConfig, hasher: PiiHasher) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.hasher = hasher
        self.events: list[SimEvent] = []
        self.journeys: list[TruthJourney] = []
        flat = config.daily_cycle == 1.0 and config.weekend_share == 1.0
        self._cycle = None if flat else Cycle(config.daily_cycle, config.weekend_share)

    def run(self) -> tuple[list[SimEvent], GroundTruth]:
        humans = [self._human(i) for i in range(self.config.customers)]
        for human in humans:
            self._live(human)
        self.events.sort(key=lambda e: (e.occurred_at, e.event["event_id"]))
        truth = GroundTruth.build(self.config, humans_links(humans), self.journeys, self.events)
        return self.events, truth

    # -- people -------------------------------------------------------------------------
    def _human(self, i: int) -> Human:
        rng, cfg = self.rng, self.config
        has_account = rng.random() < cfg.account_share
        return Human(
            idx=i,
            customer_id=f"cust-{i:06d}" if has_account else None,
            cookies=[f"anon-{i:06d}-{k}" for k in range(rng.choice((1, 1, 2)))],
            device_id=f"dev-{i:06d}" if rng.random() < cfg.app_share else None,
            email_hash=self.hasher.email(f"customer{i}@example.com"),
            phone_hash=self.hasher.phone(f"+1555{i:07d}"),
            loyalty_id=f"L{i:07d}" if has_account and rng.random() < 0.5 else None,
        )

    def _live(self, human: Human) -> None:
        for journey, per_day in (
            (PURCHASE, self.config.purchase_journeys_per_day),
            (SUPPORT, self.config.support_journeys_per_day if human.customer_id else 0.0),
        ):
            t = self.config.start
            while per_day > 0:
                t = self._next_start(t, per_day)
                if t >= self.config.end:
                    break
                t = self._journey(human, journey, t) + timedelta(minutes=1)

    def _next_start(self, t: datetime, per_day: float) -> datetime:
        """The next journey start after `t`: a Poisson process of `per_day`, thinned by the
        daily cycle and the weekend when the configuration has them."""
        if self._cycle is None:
            return t + timedelta(days=self.rng.expovariate(per_day))
        while True:
            t += timedelta(days=self.rng.expovariate(per_day * self._cycle.peak))
            if t >= self.config.end or self.rng.random() * self._cycle.peak < self._cycle.at(t):
                return t

    # -- one journey --------------------------------------------------------------------
    def _journey(self, human: Human, journey: Journey, start: datetime) -> datetime:
        """Emit one journey instance; return when it ended (conversion or drop deadline)."""
        rng = self.rng
        instance = f"{journey.name}-{human.idx}-{len(self.journeys)}"
        channel = "app" if human.device_id and rng.random() < 0.5 else "web"
        ident = self._base_identity(human, channel)
        truth = TruthJourney(instance=instance, human=human.idx, definition=journey.name)
        self.journeys.append(truth)
        t = start
        for i, stage in enumerate(journey.stages):
            stage_channel = self._stage_channel(human, journey, stage, channel, ident)
            ident = self._before_stage(
                human, journey, stage, channel=stage_channel, ident=ident, t=t
            )
            used = self._emit_stage(
                human, stage, channel=stage_channel, ident=ident, t=t, session=instance
            )
            if i == 0:
                truth.anchor = used
            truth.stages.append(TruthStage(stage=stage.name, at=t, channel=stage_channel))
            if stage.limit is None:
                truth.outcome = "converted"
                return t
            nxt = journey.stages[i + 1]
            if not self._progresses(stage, nxt, channel, t):
                truth.outcome = "dropped_off"
                truth.dropped_stage, truth.dropped_at = stage.name, t + stage.limit
                return t + stage.limit
            t = t + stage.limit * self._progress_share(stage.limit / timedelta(hours=1))
        raise AssertionError("a journey ends at its final stage")

    def _progress_share(self, hours: float) -> float:
        """When a customer who moves on does, as a share of the stage's time limit (of
        `hours`)."""
        rng, how = self.rng, self.config.progress_times
        if how == "uniform":
            return rng.uniform(0.05, 0.6)
        if how == "bimodal" and rng.random() < 0.3:
            return rng.uniform(0.35, 0.85)
        return min(0.95, rng.lognormvariate(math.log(4 / 60 / hours), 0.8))

    def _base_identity(self, human: Human, channel: str) -> dict[str, str]:
        if channel == "app":
            assert human.device_id is not None
            ident = {"device_id": human.device_id}
            if human.customer_id:
                ident["customer_id"] = human.customer_id
            return ident
        return {"anonymous_id": self.rng.choice(human.cookies)}

    def _stage_channel(
        self, human: Human, journey: Journey, stage: Stage, channel: str, ident: dict[str, str]
    ) -> str:
        if channel in stage.events:
            if stage.name == "purchase" and self._can_buy_in_store(human, ident):
                return "store" if self.rng.random() < self.config.store_purchase_share else channel
            return channel
        return next(iter(stage.events))

    def _can_buy_in_store(self, human: Human, ident: dict[str, str]) -> bool:
        # Only a purchase that stitches to the same person: card and account both known,
        # and the online part of the journey carried the account.
        return bool(human.loyalty_id and "customer_id" in ident)

    def _before_stage(
        self,
        human: Human,
        journey: Journey,
        stage: Stage,
        *,
        channel: str,
        ident: dict[str, str],
        t: datetime,
    ) -> dict[str, str]:
        """Logins before the cart (or the support issue) link the cookie to the account."""
        needs_login = (journey is PURCHASE and stage.name == "cart") or (
            journey is SUPPORT and stage.name == "issue"
        )
        wants = journey is SUPPORT or self.rng.random() < self.config.login_probability
        if not (channel == "web" and needs_login and human.customer_id and wants):
            return ident
        if "customer_id" in ident:
            return ident
        login = {
            **ident,
            "customer_id": human.customer_id,
            "email_hash": human.email_hash,
            "phone_hash": human.phone_hash,
        }
        self._emit(
            human,
            "web",
            "login",
            touchpoint="/login",
            identity=login,
            t=t - timedelta(seconds=2),
            props={},
        )
        human.phone_linked = True
        return {**ident, "customer_id": human.customer_id}

    def _emit_stage(
        self,
        human: Human,
        stage: Stage,
        *,
        channel: str,
        ident: dict[str, str],
        t: datetime,
        session: str,
    ) -> str:
        """Emit a stage's events; return one identifier they carried ("type:value")."""
        rng = self.rng
        identity = self._channel_identity(human, channel, ident)
        event_type, touchpoint = rng.choice(stage.events[channel])
        props: dict[str, Any] = dict(stage.properties)
        factor = self._incident_factor(channel, touchpoint, t, "errors")
        if rng.random() < min(1.0, self.config.friction_rate * factor):
            key, value = rng.choice(FRICTION[channel])
            props[key] = value
        if channel == "call_center":
            self._emit_call(human, identity, touchpoint, t, props)
        else:
            for k in range(rng.choice((1, 1, 2))):
                when = t + timedelta(seconds=40 * k)
                self._emit(
                    human,
                    channel,
                    event_type,
                    touchpoint=touchpoint,
                    identity=identity,
                    t=when,
                    props=props,
                    session=session,
                )
        name, value = next(iter(identity.items()))
        return f"{name}:{value}"

    def _emit_call(
        self,
        human: Human,
        identity: dict[str, str],
        queue: str,
        t: datetime,
        props: dict[str, Any],
    ) -> None:
        """A call: queued, answered after a wait, ended with a disposition."""
        waits = self._incident_factor("call_center", queue, t, "waits")
        wait = timedelta(seconds=self.rng.uniform(20, 240) * waits)
        if "disposition" in props:  # the resolving call of the journey
            props = {**props, "handle_seconds": self.rng.randrange(120, 900)}
            self._emit(
                human,
                "call_center",
                "contact_ended",
                touchpoint=queue,
                identity=identity,
                t=t,
                props=props,
            )
            return
        answered = t + wait
        for event_type, when, extra in (
            ("contact_queued", t, props),
            ("contact_answered", answered, {"wait_seconds": int(wait.total_seconds())}),
            ("contact_ended", answered + timedelta(minutes=5), {"disposition": "unresolved"}),
        ):
            self._emit(
                human,
                "call_center",
                event_type,
                touchpoint=queue,
                identity=identity,
                t=when,
                props=extra,
            )

    def _channel_identity(
        self, human: Human, channel: str, ident: dict[str, str]
    ) -> dict[str, str]:
        if channel == "call_center":
            identity = {"phone_hash": human.phone_hash}
            if human.customer_id and (not human.phone_linked or self.rng.random() < 0.5):
                identity["customer_id"] = human.customer_id  # an authenticated caller
            return identity
        if channel == "store":
            assert human.loyalty_id is not None and human.customer_id is not None
            return {"loyalty_id": human.loyalty_id, "customer_id": human.customer_id}
        return ident

    def _progresses(self, stage: Stage, nxt: Stage, channel: str, t: datetime) -> bool:
        conversion = self.config.stage_conversion.get(stage.name, stage.conversion)
        drop = 1.0 - min(1.0, conversion * self.config.conversion_scale)
        for incident in self._active(t):
            touchpoints = {tp for _et, tp in nxt.events.get(incident.channel, ())}
            if incident.touchpoint in touchpoints and incident.channel in (channel, "call_center"):
                if incident.kind == "down":
                    return False
                drop = min(0.95, drop * incident.factor)
        return self.rng.random() >= drop

    def _incident_factor(self, channel: str, touchpoint: str, t: datetime, kind: str) -> float:
        factor = 1.0
        for incident in self._active(t):
            if (incident.channel, incident.touchpoint, incident.kind) == (
                channel,
                touchpoint,
                kind,
            ):
                factor *= incident.factor
        return factor

    def _delivered(self, channel: str, touchpoint: str, t: datetime) -> bool:
        """False for an event a `lost` or `off` incident keeps from ever being sent."""
        for incident in self._active(t):
            if incident.kind not in ("lost", "off") or incident.channel != channel:
                continue
            if incident.touchpoint not in ("*", touchpoint):
                continue
            if incident.kind == "off" or self.rng.random() * incident.factor >= 1.0:
                return False
        return True

    def _active(self, t: datetime) -> list[Incident]:
        out = []
        for incident in self.config.incidents:
            begin, end = incident.window(self.config.start)
            if begin <= t < end:
                out.append(incident)
        return out

    def _emit(
        self,
        human: Human,
        channel: str,
        event_type: str,
        *,
        touchpoint: str,
        identity: dict[str, str],
        t: datetime,
        props: dict[str, Any],
        session: str | None = None,
    ) -> None:
        if not self._delivered(channel, touchpoint, t):
            return
        human.links.append({f"{k}:{v}" for k, v in identity.items()})
        event = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "channel": channel,
            "source": SOURCES[channel],
            "event_type": event_type,
            "occurred_at": t.isoformat(),
            "identity": dict(identity),
            "session_id": session if channel in ("web", "app") else None,
            "touchpoint": touchpoint,
            "properties": props,
        }
        key = next(f"{k}:{identity[k]}" for k in _PRIORITY if k in identity)
        self.events.append(SimEvent(t, key, event))


class Cycle:
    """Journey starts over the week, relative to the mean: a cosine over the day from the
    quietest hour (04:00 UTC, 1) to the busiest (16:00, `daily`), times `weekend` on
    Saturdays and Sundays, divided by the week's mean of that product."""

    def __init__(self, daily: float, weekend: float) -> None:
        self.daily, self.weekend = daily, weekend
        self.mean = (1.0 + daily) / 2 * (5 + 2 * weekend) / 7
        self.peak = daily / self.mean

    def at(self, t: datetime) -> float:
        hours = t.hour + t.minute / 60
        level = 1.0 + (self.daily - 1.0) * (1 - math.cos(2 * math.pi * (hours - 4) / 24)) / 2
        if t.weekday() >= 5:
            level *= self.weekend
        return level / self.mean


_PRIORITY = ("customer_id", "loyalty_id", "email_hash", "phone_hash", "device_id", "anonymous_id")


def humans_links(humans: list[Human]) -> list[list[set[str]]]:
    return [h.links for h in humans]


__all__ = ["JOURNEYS", "SimEvent", "Simulation"]
