"""What an event means to the journey core, worked out once per kind of event and kept: the
stages of which definitions it matches, the journeys it belongs to (those stages' and those
whose `includes` take it), whether it completes a task, the one string object shared per
channel and touchpoint name, and its friction signals as labels.

The caches are plain dicts the core reads inline on its per-event path; the methods here
fill them on a miss. Each has a bound: a stream of junk names must not grow them forever
(past it, events are still understood, just not cached).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from schemas.definitions import DefinitionSpec
from stream_processors.journeys.core.match import Definition, Match, Matcher
from stream_processors.journeys.core.signals import Labels, label

_NAMES_LIMIT: Final = 100_000  # distinct channel and touchpoint names shared
_PLANS_LIMIT: Final = 100_000  # distinct (event type, channel) pairs remembered
_LABELS_LIMIT: Final = 100_000  # distinct (signals, channel, touchpoint) labels shared
_EMPTY: Mapping[str, Any] = {}
# One stage an event matches: its definition, stage index and hold value.
Stage = tuple[Definition, int, str | None]
# A journey an event belongs to: its definition and hold value (the track it counts on).
Member = tuple[Definition, str | None]
# What an (event type, channel) pair means: the channel name shared, the stages it matches,
# whether it completes a task and the journeys it belongs to (None when they depend on more
# of the event: touchpoint or properties).
Plan = tuple[str, tuple[Stage, ...] | None, bool | None, tuple[Member, ...] | None]
# A definition's include rules: (channels, event types), None meaning any.
_Include = tuple[frozenset[str] | None, frozenset[str] | None]


class EventPlans:
    """The meaning of events for a set of compiled definitions; see the module docstring."""

    def __init__(
        self,
        definitions: Sequence[Definition],
        specs: Sequence[DefinitionSpec],
        task_types: frozenset[str] | None,
    ) -> None:
        self.definitions = definitions
        self._matcher = Matcher(definitions, specs)
        self._task_types = task_types
        self._includes: tuple[tuple[Definition, tuple[_Include, ...]], ...] = tuple(
            (d, tuple(_include(rule.channels, rule.event_types) for rule in spec.includes))
            for d, spec in zip(definitions, specs, strict=True)
            if spec.includes
        )
        # Included events of a definition with a hold-constant key count on the track of
        # their value: the journeys they belong to then depend on their properties.
        self._held = any(d.hold is not None for d, _ in self._includes)
        # event type -> raw channel -> plan: nested, so a lookup builds and hashes no key tuple
        self.plans: dict[str, dict[str, Plan]] = {}
        self._planned = 0
        self.names: dict[str, str] = {}
        self.labels: dict[tuple[tuple[str, ...], str, str | None], Labels] = {}

    def plan(self, event_type: str, raw_channel: str) -> Plan:
        """What (event type, channel) means, kept for the next events like it."""
        channel = self.names.get(raw_channel) or self.name(raw_channel)
        stages: tuple[Stage, ...] | None = None
        task: bool | None = None
        if self._matcher.plain(event_type):
            stages, task = self._stages(
                event_type, self._matcher.match(event_type, channel, None, _EMPTY)
            )
        elif self._task_types is not None:
            task = event_type in self._task_types
        members = None
        if stages is not None and not self._held:
            members = self.members(stages, event_type, channel, _EMPTY)
        plan = (channel, stages, task, members)
        if self._planned < _PLANS_LIMIT:
            self.plans.setdefault(event_type, {})[raw_channel] = plan
            self._planned += 1
        return plan

    def match(
        self, event: Mapping[str, Any], event_type: str, channel: str, touchpoint: str | None
    ) -> tuple[tuple[Stage, ...], bool]:
        """The stages of an event whose matches depend on its touchpoint or properties."""
        properties = event.get("properties") or _EMPTY
        return self._stages(
            event_type, self._matcher.match(event_type, channel, touchpoint, properties)
        )

    def members(
        self,
        stages: tuple[Stage, ...],
        event_type: str,
        channel: str,
        properties: Mapping[str, Any],
    ) -> tuple[Member, ...]:
        """The journeys an event belongs to: those of the stages it matches, and those whose
        include rules take it (on the track of its hold value, if the definition has one)."""
        found = tuple((d, hold) for d, _stage, hold in stages)
        for d, rules in self._includes:
            if any(m[0] is d for m in found) or not _included(rules, event_type, channel):
                continue
            if d.hold is None:
                found += ((d, None),)
            elif (value := properties.get(d.hold)) is not None:
                found += ((d, str(value)),)
        return found

    def _stages(self, event_type: str, matches: Sequence[Match]) -> tuple[tuple[Stage, ...], bool]:
        """Matches as (definition, stage, hold), and whether the event completes a task."""
        stages = tuple((self.definitions[index], stage, hold) for index, stage, hold, _ in matches)
        if self._task_types is not None:
            return stages, event_type in self._task_types
        return stages, any(match[3] for match in matches)

    def label(self, found: tuple[str, ...], channel: str, touchpoint: str | None) -> Labels:
        """An event's signals as labels: one tuple per kind of event, which the journeys
        that met it share (as they share names)."""
        labels = tuple(label(signal, channel, touchpoint) for signal in found)
        if len(self.labels) < _LABELS_LIMIT:
            self.labels[found, channel, touchpoint] = labels
        return labels

    def name(self, name: str) -> str:
        """One string object per channel and touchpoint name, which hits and journeys then
        share (JSON decoding makes a new one per event: ~100 bytes per kept hit)."""
        if len(self.names) < _NAMES_LIMIT:
            self.names[name] = name
        return name


def _include(channels: Sequence[Any], event_types: Sequence[str]) -> _Include:
    names = frozenset(str(getattr(c, "value", c)) for c in channels)
    return (names or None, frozenset(event_types) or None)


def _included(rules: tuple[_Include, ...], event_type: str, channel: str) -> bool:
    return any(
        (channels is None or channel in channels) and (types is None or event_type in types)
        for channels, types in rules
    )
