"""Friction signals of one event, by the rules of a mapping file (schemas/friction.py) and
by what a version 2 event states itself (schemas/touchpoint.py).

Pure and lean on the per-event path: the mapping is compiled once into plain closures, and
the rules that can apply to a (channel, event type) pair are found once and cached, so an
event costs one dict lookup plus its few candidate rules. No pydantic per event.

A version 2 event's signals come from three places, and each signal counts once per event
whichever of them finds it (`event_signals`):
- the mapping's rules, which read the fields of the event's typed channel block under their
  own names, like properties (a typed field wins over a property of the same name), so
  thresholds such as "a wait over 300 s" apply to typed and free-form values alike;
- the typed block's signal fields (`TYPED_SIGNALS`: `crash: true`, `http_status` 5xx, ...);
- the signals it lists in `friction`.

`RepeatContacts` is the one signal that needs memory: a person's contact within N days of
their previous contact, decided in event time so arrival order does not change the answer.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.friction import (
    Condition,
    FrictionMapping,
    RepeatContactRule,
    Scalar,
    Signal,
    SignalRule,
)

Properties = Mapping[str, Any]
Predicate = Callable[[Properties], bool]
NO_SIGNALS: tuple[Signal, ...] = ()
_NO_PROPERTIES: Properties = {}
# Distinct event types are few in practice; the cap keeps a stream of junk names from
# growing the cache without bound (such events are still classified, just not cached).
MAX_CACHED_PLANS = 50_000
_NUMERIC_START = frozenset("0123456789+-.")


# A rule with property conditions, compiled: (rule order, signal, its predicates).
Conditional = tuple[int, Signal, tuple[Predicate, ...]]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the mapping says about every event of one channel and event type."""

    exposure: bool
    contact: bool  # a contact for the repeat-contact memory
    signals: tuple[Signal, ...]  # signals its type alone implies (rules without `when`)
    # Rules with property conditions, by a property each needs: an event is only tested
    # against the rules whose property it carries, which for most events is none.
    by_property: Mapping[str, tuple[Conditional, ...]]
    always: tuple[Conditional, ...]  # rules that need no property (only `present = false`)


class FrictionMatcher:
    """Classifies events: is it an exposure of its touchpoint, and which signals it carries."""

    def __init__(self, mapping: FrictionMapping) -> None:
        self.mapping = mapping
        self._rules = [(rule, tuple(_predicate(c) for c in rule.when)) for rule in mapping.rule]
        self._plans: dict[tuple[str, str], Plan] = {}

    def plan(self, channel: str, event_type: str) -> Plan:
        """The cached plan for a (channel, event type) pair."""
        key = (channel, event_type)
        found = self._plans.get(key)
        if found is None:
            found = self._compile(channel, event_type)
            if len(self._plans) < MAX_CACHED_PLANS:
                self._plans[key] = found
        return found

    def classify(self, event: Mapping[str, Any]) -> tuple[bool, tuple[Signal, ...]]:
        """(counts as an exposure, its signals without repeats) for one event: the mapping's
        in rule order, then those the event states itself (`event_signals`)."""
        channel = event["channel"]
        plan = self.plan(channel, event["event_type"])
        if event.get(channel) or event.get("friction"):
            return plan.exposure, event_signals(plan, event)
        # Inlined for the events that state nothing (all of version 1): the hot path.
        if not (plan.by_property or plan.always):
            return plan.exposure, plan.signals
        return plan.exposure, plan_signals(plan, event.get("properties") or _NO_PROPERTIES)

    def signals_of(self, event: Mapping[str, Any]) -> tuple[Signal, ...]:
        return self.classify(event)[1]

    def is_exposure(self, event: Mapping[str, Any]) -> bool:
        return self.plan(event["channel"], event["event_type"]).exposure

    def _compile(self, channel: str, event_type: str) -> Plan:
        fixed: list[Signal] = []
        conditional: list[tuple[int, SignalRule, tuple[Predicate, ...]]] = []
        for order, (rule, predicates) in enumerate(self._rules):
            if not _applies(rule, channel, event_type):
                continue
            if predicates:
                conditional.append((order, rule, predicates))
            elif rule.signal not in fixed:
                fixed.append(rule.signal)
        by_property: dict[str, list[Conditional]] = {}
        always: list[Conditional] = []
        for order, rule, predicates in conditional:
            if rule.signal in fixed:
                continue
            needed = _needed_property(rule)
            compiled = (order, rule.signal, predicates)
            if needed is None:
                always.append(compiled)
            else:
                by_property.setdefault(needed, []).append(compiled)
        exposure_rule = self.mapping.exposure_for(channel)
        return Plan(
            exposure=exposure_rule is None or exposure_rule.counts(event_type),
            contact=_is_contact(self.mapping.repeat_contacts, channel, event_type),
            signals=tuple(fixed),
            by_property={name: tuple(rules) for name, rules in by_property.items()},
            always=tuple(always),
        )


def event_signals(plan: Plan, event: Mapping[str, Any]) -> tuple[Signal, ...]:
    """Every signal of one event under `plan` (its channel's and type's), each once: the
    mapping's over its properties and typed block, in rule order, then the ones it states
    (`typed_signals`). A version 1 event costs two dict lookups more than `plan_signals`."""
    channel = event["channel"]
    block = event.get(channel) if channel in TYPED_SIGNALS else None
    stated = event.get("friction")
    props = event.get("properties") or _NO_PROPERTIES
    if block:
        # The typed value wins: it is what the producer validated against the contract.
        props = {**props, **{k: v for k, v in block.items() if v is not None}}
    mapped = plan_signals(plan, props) if plan.by_property or plan.always else plan.signals
    if not (block or stated):
        return mapped
    found = list(mapped)
    for signal in _stated(channel, block, stated):
        if signal not in found:
            found.append(signal)
    return tuple(found)


def plan_signals(plan: Plan, props: Properties) -> tuple[Signal, ...]:
    """The signals of an event with these properties under `plan`, in rule order."""
    index = plan.by_property
    matched: list[tuple[int, Signal]] = []
    if props and index:
        # Walk the shorter side: few properties (most events) or few indexed names.
        names = (
            [n for n in props if n in index]
            if len(props) <= len(index)
            else [n for n in index if n in props]
        )
        for name in names:
            _match(index[name], props, matched)
    if plan.always:
        _match(plan.always, props, matched)
    if not matched:
        return plan.signals
    found = list(plan.signals)
    for _order, signal in sorted(matched):
        if signal not in found:
            found.append(signal)
    return tuple(found)


def _match(
    rules: tuple[Conditional, ...], props: Properties, out: list[tuple[int, Signal]]
) -> None:
    for order, signal, predicates in rules:
        for test in predicates:
            if not test(props):
                break
        else:
            out.append((order, signal))


def _needed_property(rule: SignalRule) -> str | None:
    """A property the rule cannot match without (every operator but `present = false`)."""
    for condition in rule.when:
        if condition.operator != "present" or condition.present:
            return condition.property_name
    return None


def _applies(rule: SignalRule, channel: str, event_type: str) -> bool:
    if rule.channel is not None and rule.channel != channel:
        return False
    return rule.events is None or event_type in rule.events


def _is_contact(rule: RepeatContactRule | None, channel: str, event_type: str) -> bool:
    return rule is not None and rule.channel == channel and event_type in rule.events


# -- signals a version 2 event states --------------------------------------------------------

ValueTest = Callable[[Any], bool]


def _flag(value: Any) -> bool:
    return value is True


def _one_or_more(value: Any) -> bool:
    return type(value) is int and value >= 1


def _server_error(value: Any) -> bool:
    return type(value) is int and 500 <= value <= 599


def _none_found(value: Any) -> bool:
    return type(value) is int and value == 0


# Per channel: (field of its typed block, the test its value passes, the signal it states).
# Facts that are a signal by definition, with no threshold for a team to choose; measured
# fields (load_ms, wait_seconds, survey_score, ...) are left to the mapping's rules.
TYPED_SIGNALS: Mapping[str, tuple[tuple[str, ValueTest, Signal], ...]] = {
    "web": (
        ("http_status", _server_error, Signal.ERROR),
        ("rage_clicks", _one_or_more, Signal.RAGE_CLICK),
        ("dead_clicks", _one_or_more, Signal.DEAD_CLICK),
        ("search_results", _none_found, Signal.SEARCH_NO_RESULTS),
    ),
    "app": (
        ("http_status", _server_error, Signal.ERROR),
        ("crash", _flag, Signal.APP_CRASH),
    ),
    "call_center": (
        ("abandoned", _flag, Signal.ABANDONED_CALL),
        ("transfers", _one_or_more, Signal.TRANSFER),
        ("repeat_contact", _flag, Signal.REPEAT_CONTACT),
    ),
    "store": (
        ("is_return", _flag, Signal.STORE_RETURN),
        ("out_of_stock", _flag, Signal.OUT_OF_STOCK),
    ),
}
_SIGNALS: Mapping[str, Signal] = {signal.value: signal for signal in Signal}


def typed_signals(event: Mapping[str, Any]) -> tuple[Signal, ...]:
    """The signals a version 2 event states itself, each once: its `friction` entries, then
    the signal fields of its channel's block. Empty for a version 1 event. Reads the event
    as ingest forwards it (validated); a signal name it does not know is skipped."""
    channel = event["channel"]
    block = event.get(channel) if channel in TYPED_SIGNALS else None
    return _stated(channel, block, event.get("friction"))


def _stated(channel: str, block: Any, listed: Any) -> tuple[Signal, ...]:
    found: list[Signal] = []
    for entry in listed or ():
        signal = _SIGNALS.get(entry.get("signal", "")) if isinstance(entry, Mapping) else None
        if signal is not None and signal not in found:
            found.append(signal)
    if block:
        for name, test, signal in TYPED_SIGNALS[channel]:
            value = block.get(name)
            if value is not None and test(value) and signal not in found:
                found.append(signal)
    return tuple(found)


# -- property conditions ---------------------------------------------------------------------


def normalized(value: Any) -> str | None:
    """The form values are compared in: `true`/`false`, integers without a fraction, other
    numbers as repr, strings stripped and lower-cased. None and containers give None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        text = value.strip().lower()
        # Only text that starts like a number is tried as one: a failed float() costs ~1 us.
        number = _number(text) if text[:1] in _NUMERIC_START else None
        return text if number is None else normalized(number)
    return None


def _number(value: Any) -> float | None:
    """A property as a number: ints and floats, and strings that read as one; never bools."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _predicate(condition: Condition) -> Predicate:
    name, op = condition.property_name, condition.operator
    if op == "present":
        wanted = bool(condition.present)
        return lambda p: (p.get(name) not in (None, "")) is wanted
    if op in ("equals", "in_", "not_in"):
        return _membership(name, op, condition)
    bound = float(getattr(condition, op))
    compare: Callable[[float], bool] = {
        "gt": lambda x: x > bound,
        "ge": lambda x: x >= bound,
        "lt": lambda x: x < bound,
        "le": lambda x: x <= bound,
    }[op]

    def test(props: Properties) -> bool:
        number = _number(props.get(name))
        return number is not None and compare(number)

    return test


def _membership(name: str, op: str, condition: Condition) -> Predicate:
    raw: tuple[Scalar, ...] = (
        (condition.equals,)
        if op == "equals" and condition.equals is not None
        else condition.in_ or condition.not_in or ()
    )
    values = frozenset(normalized(v) for v in raw)
    if op == "not_in":
        # Absent is not "some other value": a missing property never matches.
        return lambda p: (v := normalized(p.get(name))) is not None and v not in values
    return lambda p: normalized(p.get(name)) in values


# -- repeat contacts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepeatResult:
    """Whether a contact repeats an earlier one, and the later contact (time, tag) that
    became a repeat because this earlier one arrived late, if any."""

    repeat: bool
    now_repeat: tuple[int, str] | None = None


class RepeatContacts:
    """Per person, the times of their recent contacts (epoch ms) with a tag (the caller's
    touchpoint). A contact repeats when the same person had another within `within_ms`
    before it, in event time. Arrival order does not matter: when an earlier contact arrives
    late, the one contact whose predecessor changes (its successor) is reported back."""

    def __init__(self, within_ms: int) -> None:
        self.within_ms = within_ms
        self._times: dict[str, list[int]] = {}
        self._tags: dict[str, list[str]] = {}

    def observe(self, person: str, at_ms: int, tag: str = "") -> RepeatResult:
        times = self._times.setdefault(person, [])
        tags = self._tags.setdefault(person, [])
        i = bisect.bisect_left(times, at_ms)
        if i < len(times) and times[i] == at_ms:
            return RepeatResult(False)  # the same contact again (a replay), counted once
        repeat = i > 0 and at_ms - times[i - 1] <= self.within_ms
        now_repeat = None
        if i < len(times):
            nxt = times[i]
            was_repeat = i > 0 and nxt - times[i - 1] <= self.within_ms
            if not was_repeat and nxt - at_ms <= self.within_ms:
                now_repeat = (nxt, tags[i])
        times.insert(i, at_ms)
        tags.insert(i, tag)
        return RepeatResult(repeat, now_repeat)

    def expire(self, before_ms: int) -> int:
        """Forget contacts before `before_ms` (no accepted event can reach back to them:
        pass watermark - allowed lateness - within); returns how many persons were dropped."""
        gone = []
        for person, times in self._times.items():
            cut = bisect.bisect_left(times, before_ms)
            if cut:
                del times[:cut]
                del self._tags[person][:cut]
            if not times:
                gone.append(person)
        for person in gone:
            del self._times[person]
            del self._tags[person]
        return len(gone)

    def __len__(self) -> int:
        return len(self._times)
