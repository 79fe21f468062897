"""Simulation settings and scheduled incidents, validated with clear errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

IncidentKind = Literal["errors", "waits", "down", "stall", "lost", "off"]
ProgressTimes = Literal["uniform", "quick", "bimodal"]
# The longest a journey can run past its start: every stage at its limit (purchase: 97 h).
JOURNEY_SPAN_DAYS = 5

_SPEC = re.compile(
    r"^(?P<channel>web|app|call_center|store):(?P<touchpoint>[^ ]+)"
    r"\s+(?P<kind>errors|waits|down|stall|lost|off)"
    r"(?:\s*[x\u00d7](?P<factor>\d+(?:\.\d+)?))?\s+@(?P<start>\d+)m\s+for\s+(?P<minutes>\d+)m$"
)


class Incident(BaseModel):
    """Something breaks at one touchpoint for a while: friction and drop-off rise there.

    `errors` multiplies friction and drop-off by `factor`; `waits` multiplies call-center
    waits and abandonment; `down` makes the touchpoint unreachable. The silent ones raise no
    error event at all: `stall` multiplies the drop-off of the stage before the touchpoint by
    `factor` (at most 95% drop off: a checkout whose confirmation silently fails), `lost`
    delivers one event in `factor` of the touchpoint's (`*`: the channel's whole source) and
    `off` none (a source that stopped sending).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Literal["web", "app", "call_center", "store"]
    touchpoint: str
    kind: IncidentKind
    factor: float = Field(default=8.0, ge=1.0)
    start_minute: int = Field(ge=0)
    duration_minutes: int = Field(gt=0)

    @classmethod
    def parse(cls, spec: str) -> Incident:
        """`web:/checkout errors x8 @30m for 15m`, `call_center:queue:support waits x5 @60m
        for 20m`, `app:payment down @90m for 10m`, `web:/checkout/done stall x20 @60m for
        60m`, `app:* lost x10 @30m for 60m`, `app:* off @30m for 180m`."""
        match = _SPEC.match(spec.strip())
        if match is None:
            raise ValueError(
                f"incident {spec!r}: expected 'CHANNEL:TOUCHPOINT KIND [xFACTOR] @STARTm for Nm'"
            )
        g = match.groupdict()
        return cls(
            channel=g["channel"],
            touchpoint=g["touchpoint"],
            kind=g["kind"],
            factor=float(g["factor"] or 8),
            start_minute=int(g["start"]),
            duration_minutes=int(g["minutes"]),
        )

    def window(self, start: datetime) -> tuple[datetime, datetime]:
        begin = start + timedelta(minutes=self.start_minute)
        return begin, begin + timedelta(minutes=self.duration_minutes)


def _default_start(days: float) -> datetime:
    start = datetime.now(UTC) - timedelta(days=days + JOURNEY_SPAN_DAYS)
    return start.replace(minute=0, second=0, microsecond=0)


class SimConfig(BaseModel):
    """How many customers, for how long, and how they behave."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customers: int = Field(default=1_000, ge=1)
    days: float = Field(default=2.0, gt=0)
    # Default: far enough back that every journey, and its last deadline, lies in the past.
    start: datetime = Field(default_factory=lambda data: _default_start(data["days"]))
    seed: int = 7
    purchase_journeys_per_day: float = Field(default=0.6, ge=0)
    support_journeys_per_day: float = Field(default=0.1, ge=0)
    account_share: float = Field(default=0.6, ge=0, le=1)  # customers with a customer_id
    app_share: float = Field(default=0.35, ge=0, le=1)
    store_purchase_share: float = Field(default=0.25, ge=0, le=1)
    login_probability: float = Field(default=0.7, ge=0, le=1)
    conversion_scale: float = Field(default=1.0, gt=0)
    friction_rate: float = Field(default=0.03, ge=0, le=1)
    incidents: tuple[Incident, ...] = ()
    # Per stage name, the probability of reaching the next stage in time, instead of the
    # catalog's (`conversion_scale` still applies).
    stage_conversion: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    # Journey starts over the day: the busiest hour (16:00 UTC) has `daily_cycle` times the
    # starts of the quietest (04:00); 1 is flat. Saturdays and Sundays have `weekend_share`
    # of a weekday's. The mean rate stays `*_journeys_per_day`.
    daily_cycle: float = Field(default=1.0, ge=1.0)
    weekend_share: float = Field(default=1.0, gt=0, le=1)
    # How long a customer takes to move on from a stage, as a share of its time limit:
    # `uniform` 5-60%; `quick` log-normal with a median of 4 minutes (at most 95% of the
    # limit); `bimodal` 70% quick and 30% slow (35-85%: the card fetched, the bank app opened).
    progress_times: ProgressTimes = "uniform"

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)
