"""The friction signals the journey core counts and remembers per journey (docs/concepts.md §6).

An event's friction signals come from a `SignalsOf` function: their names (the values of
`schemas.friction.Signal`), each once, positive moments left out. Two are provided:

- `mapped_signals(matcher)`: exactly what the friction stage finds (`core/friction.py`):
  the mapping file's rules over properties and the typed channel block, the block's signal
  fields and the signals the event states in `friction` (contract v2). Only repeat contacts
  are missing: that signal needs a memory of the person's contacts, which the friction
  stage keeps;
- `stated_signals(names)`, the default without a mapping: the signals a version 2 event
  states (typed block and `friction`), plus properties named in `names` with a value that
  is not false-like, named as the shipped mapping names them (`error=payment_declined` is
  `payment_declined`, `transferred` is `transfer`). A signal found both ways counts once.

An event with any signal counts once in a journey's `friction`, however many it carries.
A journey remembers the distinct signals it met as labels `<signal>@<channel>:<touchpoint>`
(`payment_declined@web:/checkout`; `<signal>@<channel>` without a touchpoint), the scopes
the friction stage counts them in, so an alert can say how many of the journeys that
dropped had met the signal that rose (`remember`, at most `MAX_LABELS`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from schemas.friction import Signal
from stream_processors.core.friction_signals import (
    FrictionMatcher,
    event_signals,
    normalized,
    typed_signals,
)

SignalsOf = Callable[[Mapping[str, Any]], tuple[str, ...]]
Labels = tuple[str, ...]
# A drop-off row carries its journey's labels, and the friction stage counts each of them
# per window: a bound keeps both small. The most recent are kept: the friction met just
# before a journey stalled explains its drop-off better than what it met at its start, and
# a journey meets more than a few distinct signals only when something is badly broken
# (which the ones kept show as well).
MAX_LABELS: Final = 8
LABEL_SEPARATOR: Final = "@"
_FALSY = (None, False, 0, "", "false", "0", "no")
# Property names of the simulator and common SDKs whose signal has another name (the
# shipped mapping's rules for them); the others are named as their signal.
_RENAMED = {
    "transferred": "transfer",
    "no_results": "search_no_results",
    "abandoned": "abandoned_call",
}
_ERROR_VALUES = {"payment_declined": "payment_declined", "crash": "app_crash"}
_POSITIVE = frozenset(s for s in Signal if s.positive)


def label(signal: str, channel: str, touchpoint: str | None) -> str:
    """The label of a signal met at a place: `payment_declined@web:/checkout`."""
    place = f"{channel}:{touchpoint}" if touchpoint else channel
    return f"{signal}{LABEL_SEPARATOR}{place}"


def label_text(found: str) -> str:
    """A label as people read it: `payment_declined at web:/checkout`."""
    signal, _, place = found.partition(LABEL_SEPARATOR)
    return f"{signal} at {place}" if place else signal


def remember(kept: Labels | None, labels: Labels) -> Labels:
    """`kept` with `labels` added as the most recent, each once, at most `MAX_LABELS`."""
    if kept is None or kept == labels:
        return labels if len(labels) <= MAX_LABELS else labels[-MAX_LABELS:]
    if len(labels) == 1 and kept[-1] == labels[0]:
        return kept  # the same signal again: most events with one repeat the last
    merged = tuple(x for x in kept if x not in labels) + labels
    return merged if len(merged) <= MAX_LABELS else merged[-MAX_LABELS:]


def merged(first: Labels | None, second: Labels | None) -> Labels | None:
    """The labels of two instances folded into one (`second` counts as the more recent)."""
    if not second:
        return first
    return remember(first, second)


def mapped_signals(matcher: FrictionMatcher) -> SignalsOf:
    """The friction stage's signals of an event (see the module docstring)."""
    names: dict[tuple[Signal, ...], tuple[str, ...]] = {}

    def signals_of(event: Mapping[str, Any]) -> tuple[str, ...]:
        channel = event["channel"]
        plan = matcher.plan(channel, event["event_type"])
        # Most events: a type no rule names, nothing typed or stated.
        if not (plan.signals or plan.by_property or plan.always) and not (
            event.get(channel) or event.get("friction")
        ):
            return ()
        found = event_signals(plan, event)
        if not found:
            return ()
        known = names.get(found)
        if known is None:
            known = tuple(s.value for s in found if s not in _POSITIVE)
            if len(names) < 4_096:
                names[found] = known
        return known

    return signals_of


def stated_signals(properties: Iterable[str]) -> SignalsOf:
    """The default signals without a mapping (see the module docstring)."""
    wanted = frozenset(properties)

    def signals_of(event: Mapping[str, Any]) -> tuple[str, ...]:
        # Most events have neither a typed block nor a `friction` list: nothing to call for.
        if event.get(event["channel"]) or event.get("friction"):
            found = [s.value for s in typed_signals(event) if s not in _POSITIVE]
        else:
            found = []
        props = event.get("properties")
        if props:
            # Events carry few properties: scan them.
            for name, value in props.items():
                if name in wanted and value not in _FALSY:
                    signal = _property_signal(name, value)
                    if signal not in found:
                        found.append(signal)
        return tuple(found)

    return signals_of


def _property_signal(name: str, value: Any) -> str:
    if name == "error":
        return _ERROR_VALUES.get(normalized(value) or "", "error")
    return _RENAMED.get(name, name)
