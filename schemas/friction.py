"""Friction signals and the mapping file that says which events carry them (docs/concepts.md §6).

A signal is a typed name for something that went wrong for a customer at a touchpoint (an
error, a declined payment, a long queue wait, a store return) or went well (a completed order,
a fast resolution). Teams name their events their own way, so a TOML mapping file says which
event names and property values mean which signal, and which events count as exposures of a
touchpoint (the denominator of its friction rate). The shipped defaults live in
`deploy/friction/defaults.toml`; a team file can extend them (`FrictionMapping.extended_by`).

```toml
[[rule]]
signal = "long_queue_wait"
channel = "call_center"                              # optional: any channel
events = ["contact_answered", "contact_abandoned"]   # optional: any event type
when = [{ property = "wait_seconds", gt = 300 }]     # all must hold; optional

[[exposure]]
channel = "call_center"
events = ["contact_ended"]     # only these count; or `exclude = [...]` for all but these

[repeat_contacts]
channel = "call_center"
events = ["contact_ended"]
within_days = 7
```

String comparisons ignore case and surrounding spaces; `equals = true` also matches the
strings "true"/"false"; numbers match numeric strings ("500" equals 500). The engine that
applies a mapping per event is `stream_processors/core/friction_signals.py`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.config_files import load_config
from schemas.vocabulary import Channel, Name

if TYPE_CHECKING:
    from schemas.settings import FrictionSettings


class Signal(StrEnum):
    """The typed signals, also the names a producer can state in a touchpoint's `friction`
    (schema_version 2); the last three are positive moments, the rest friction."""

    ERROR = "error"  # HTTP 5xx, a failed request, a generic error event
    PAYMENT_DECLINED = "payment_declined"
    APP_CRASH = "app_crash"
    RAGE_CLICK = "rage_click"
    DEAD_CLICK = "dead_click"
    RETRY = "retry"
    SLOW_RESPONSE = "slow_response"
    FORM_ABANDONED = "form_abandoned"
    SEARCH_NO_RESULTS = "search_no_results"
    LONG_QUEUE_WAIT = "long_queue_wait"
    ABANDONED_CALL = "abandoned_call"
    TRANSFER = "transfer"
    REPEAT_CONTACT = "repeat_contact"
    LOW_SURVEY_SCORE = "low_survey_score"
    STORE_RETURN = "store_return"
    OUT_OF_STOCK = "out_of_stock"
    LONG_TILL_WAIT = "long_till_wait"
    ORDER_COMPLETED = "order_completed"
    FAST_RESOLUTION = "fast_resolution"
    HIGH_SURVEY_SCORE = "high_survey_score"

    @property
    def positive(self) -> bool:
        return self in POSITIVE_SIGNALS


POSITIVE_SIGNALS = frozenset(
    {Signal.ORDER_COMPLETED, Signal.FAST_RESOLUTION, Signal.HIGH_SURVEY_SCORE}
)
Scalar = Annotated[str, Field(max_length=1024)] | bool | int | float
_OPERATORS = ("equals", "in_", "not_in", "gt", "ge", "lt", "le", "present")


class Strict(BaseModel):
    """A mapping section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(Strict):
    """One test on one property of the event; exactly one operator."""

    property_name: Name = Field(alias="property")
    equals: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in", min_length=1)
    not_in: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    present: bool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op.rstrip("_") for op in _OPERATORS if getattr(self, op) is not None]
        if len(given) != 1:
            names = ", ".join(op.rstrip("_") for op in _OPERATORS)
            found = f"got {', '.join(given)}" if given else "got none"
            raise ValueError(f"give exactly one of {names} ({found})")
        return self

    @property
    def operator(self) -> str:
        return next(op for op in _OPERATORS if getattr(self, op) is not None)


class SignalRule(Strict):
    """Events that carry `signal`: optionally one channel, optionally some event types
    (event_type, or the Segment track call's event name), and property conditions."""

    signal: Signal
    channel: Channel | None = None
    events: tuple[Name, ...] | None = Field(default=None, min_length=1)
    when: tuple[Condition, ...] = ()

    @model_validator(mode="after")
    def _not_everything(self) -> SignalRule:
        # A rule without event types or conditions would mark every event of a channel.
        if self.events is None and not self.when:
            raise ValueError("give `events`, `when` or both: this rule matches every event")
        return self


class ExposureRule(Strict):
    """Which events of one channel count as an exposure of their touchpoint."""

    channel: Channel
    events: tuple[Name, ...] | None = Field(default=None, min_length=1)
    exclude: tuple[Name, ...] = ()

    @model_validator(mode="after")
    def _one_way(self) -> ExposureRule:
        if self.events is not None and self.exclude:
            raise ValueError("give `events` (only these count) or `exclude`, not both")
        return self

    def counts(self, event_type: str) -> bool:
        if self.events is not None:
            return event_type in self.events
        return event_type not in self.exclude


class RepeatContactRule(Strict):
    """Which events are contacts, for `repeat_contact`: a person's contact within
    `within_days` of their previous one. Needs memory per person, so it is not a `rule`."""

    channel: Channel = Channel.CALL_CENTER
    events: tuple[Name, ...] = Field(default=("contact_ended",), min_length=1)
    within_days: float = Field(default=7.0, gt=0, le=90)


class FrictionMapping(Strict):
    """A friction mapping file: signal rules, exposure rules per channel, repeat contacts."""

    version: Literal[1] = 1
    rule: tuple[SignalRule, ...] = ()
    exposure: tuple[ExposureRule, ...] = ()
    repeat_contacts: RepeatContactRule | None = RepeatContactRule()

    @model_validator(mode="after")
    def _one_exposure_rule_per_channel(self) -> FrictionMapping:
        channels = [rule.channel for rule in self.exposure]
        doubled = sorted({c.value for c in channels if channels.count(c) > 1})
        if doubled:
            raise ValueError(f"more than one [[exposure]] for channel {', '.join(doubled)}")
        return self

    def extended_by(self, team: FrictionMapping) -> FrictionMapping:
        """These rules plus a team's: its signal rules are added, its exposure rule for a
        channel replaces this one's, and its repeat-contact rule wins."""
        replaced = {rule.channel for rule in team.exposure}
        kept = tuple(rule for rule in self.exposure if rule.channel not in replaced)
        return FrictionMapping(
            rule=self.rule + team.rule,
            exposure=kept + team.exposure,
            repeat_contacts=team.repeat_contacts,
        )

    def exposure_for(self, channel: str) -> ExposureRule | None:
        return next((rule for rule in self.exposure if rule.channel == channel), None)


def load_friction_mapping(path: Path) -> FrictionMapping:
    """Read and validate a mapping file; `ConfigFileError` lists every problem with its line
    and key."""
    return load_config(path, FrictionMapping, what="friction mapping")


def load_configured_mapping(settings: FrictionSettings) -> FrictionMapping:
    """The mapping a deployment runs with (the friction and the journeys stages alike): its
    `mapping` file, extended by its `team_mapping` file if it names one."""
    mapping = load_friction_mapping(settings.mapping)
    team = settings.team_mapping
    return mapping.extended_by(load_friction_mapping(team)) if team is not None else mapping
