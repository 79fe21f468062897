"""Journey definitions compiled for the per-event path: which stages an event matches.

A `DefinitionSpec` (pydantic, validated once on load) becomes a `Definition` of plain tuples
and ints, and every stage rule is filed under the event types it names, so matching an event
is one dict lookup and a check of the (usually one or two) rules filed there. Stage indexes:
the ordered path first (0 .. success), then the failure stages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from schemas.definitions import DefinitionSpec, MatchRule

# A hit: (event time ms, event id, stage index, channel, touchpoint); tuples sort by time, id.
Hit = tuple[int, str, int, str, str | None]
# What `Matcher.match` finds for one event: (definition index, stage index, hold value,
# whether the stage is the definition's success stage).
Match = tuple[int, int, str | None, bool]
NO_MATCH: tuple[Match, ...] = ()
_MEMO_LIMIT: Final = 100_000  # distinct (event type, channel) pairs remembered
_MS: Final = 1000


@dataclass(frozen=True, slots=True)
class Definition:
    """One journey definition, ready for the state machine."""

    index: int
    id: str
    version: int
    stages: tuple[str, ...]  # ordered path, then failure stages
    success: int  # index of the success stage (the last of the ordered path)
    limits_ms: tuple[int, ...]  # time limit of each stage before the success stage
    entries: frozenset[int]
    lifetime_ms: int | None
    reopen_ms: int
    hold: str | None

    @property
    def key(self) -> str:
        """`id@version`: how snapshots name the definition they were built with."""
        return f"{self.id}@{self.version}"

    def is_failure(self, stage: int) -> bool:
        return stage > self.success


def compile_definition(spec: DefinitionSpec, index: int) -> Definition:
    """The plain form of a validated definition."""
    ordered = spec.ordered
    failures = [s for s in spec.stages if s.failure]
    names = tuple(s.name for s in ordered) + tuple(s.name for s in failures)
    limits = tuple(int(s.time_limit.total_seconds() * _MS) for s in ordered[:-1] if s.time_limit)
    return Definition(
        index=index,
        id=spec.id,
        version=spec.version,
        stages=names,
        success=len(ordered) - 1,
        limits_ms=limits,
        entries=frozenset(names.index(name) for name in spec.entries),
        lifetime_ms=_ms(spec.lifetime.total_seconds()) if spec.lifetime else None,
        reopen_ms=_ms(spec.reopen_window.total_seconds()) if spec.reopen_window else 0,
        hold=spec.hold_constant,
    )


def _ms(seconds: float) -> int:
    return round(seconds * _MS)


@dataclass(frozen=True, slots=True)
class _Rule:
    definition: int
    stage: int
    channels: frozenset[str] | None
    touchpoints: frozenset[str] | None
    # property name -> accepted (value, is_bool) pairs: True must not match 1
    properties: tuple[tuple[str, frozenset[tuple[Any, bool]]], ...]
    narrow: bool  # conditions beyond channel and event type

    def accepts(self, touchpoint: Any, properties: Mapping[str, Any]) -> bool:
        """The conditions beyond the channel (which the caller checks first)."""
        if self.touchpoints is not None and touchpoint not in self.touchpoints:
            return False
        for name, accepted in self.properties:
            value = properties.get(name)
            if value is None or (value, type(value) is bool) not in accepted:
                return False
        return True


class Matcher:
    """The stages an event matches, per definition; at most one stage per definition (a
    failure stage first, else the furthest stage of the ordered path)."""

    def __init__(self, definitions: Sequence[Definition], specs: Sequence[DefinitionSpec]):
        self.definitions = tuple(definitions)
        by_type: dict[str, list[_Rule]] = {}
        anytype: list[_Rule] = []
        for definition, spec in zip(definitions, specs, strict=True):
            for stage in spec.stages:
                index = definition.stages.index(stage.name)
                for rule in stage.match:
                    compiled = _compile_rule(definition.index, index, rule)
                    for event_type in rule.event_types:
                        by_type.setdefault(event_type, []).append(compiled)
                    if not rule.event_types:
                        anytype.append(compiled)
        self._by_type = {k: tuple(v) for k, v in by_type.items()}
        self._anytype = tuple(anytype)
        # (event type, channel) -> matches, for event types whose rules look at nothing else
        # (and definitions without a hold-constant key): one dict lookup per event.
        self._memo: dict[tuple[str, str], Sequence[Match]] = {}
        self._narrow = frozenset(
            event_type
            for event_type, rules in self._by_type.items()
            if any(r.narrow or self.definitions[r.definition].hold for r in rules)
        )

    def plain(self, event_type: str) -> bool:
        """Whether the matches of `event_type` depend on the channel alone (not on the
        touchpoint or properties)."""
        return not self._anytype and event_type not in self._narrow

    def match(
        self, event_type: str, channel: str, touchpoint: Any, properties: Mapping[str, Any]
    ) -> Sequence[Match]:
        """Every (definition, stage, hold value, is success) the event matches. An event
        without the definition's hold-constant property does not count for it."""
        found = self._memo.get((event_type, channel))
        if found is not None:
            return found
        matches = self._match(event_type, channel, touchpoint, properties)
        plain = not self._anytype and event_type not in self._narrow
        if plain and len(self._memo) < _MEMO_LIMIT:
            self._memo[event_type, channel] = tuple(matches)
        return matches

    def _match(
        self, event_type: str, channel: str, touchpoint: Any, properties: Mapping[str, Any]
    ) -> Sequence[Match]:
        rules = self._by_type.get(event_type)
        if self._anytype:
            rules = (*(rules or ()), *self._anytype)
        if not rules:
            return NO_MATCH
        found: list[list[int]] = []
        for rule in rules:
            if rule.channels is not None and channel not in rule.channels:
                continue
            if rule.narrow and not rule.accepts(touchpoint, properties):
                continue
            for entry in found:
                if entry[0] == rule.definition:
                    if _better(self.definitions[rule.definition], rule.stage, entry[1]):
                        entry[1] = rule.stage
                    break
            else:
                found.append([rule.definition, rule.stage])
        out: list[Match] = []
        for index, stage in found:
            definition = self.definitions[index]
            hold = definition.hold
            if hold is None:
                out.append((index, stage, None, stage == definition.success))
            elif (value := properties.get(hold)) is not None:
                out.append((index, stage, str(value), stage == definition.success))
        return out


def _better(definition: Definition, stage: int, known: int) -> bool:
    fail, known_fail = definition.is_failure(stage), definition.is_failure(known)
    if fail != known_fail:
        return fail
    return stage > known


def _compile_rule(definition: int, stage: int, rule: MatchRule) -> _Rule:
    props = tuple(
        (
            name,
            frozenset(
                (v, type(v) is bool) for v in (value if isinstance(value, list) else [value])
            ),
        )
        for name, value in sorted(rule.properties.items())
    )
    return _Rule(
        definition=definition,
        stage=stage,
        channels=frozenset(c.value for c in rule.channels) or None,
        touchpoints=frozenset(rule.touchpoints) or None,
        properties=props,
        narrow=bool(rule.touchpoints or props),
    )
