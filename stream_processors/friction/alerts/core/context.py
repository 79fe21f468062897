"""What an alert says beyond its figures: the likely cause and a few example journeys
(docs/concepts.md §6).

`AlertContext` keeps the recent closed windows the alert is explained from:

- per window start, the friction counters of every touchpoint scope (the latest version of
  each window), which `alert_causes.likely_cause` compares: the windows of the alert's
  evidence against the `reference_windows` windows before the alert started (frozen when
  the alert opens, so a long incident is still compared with the time before it);
- per window start and scope, a few examples the partitions picked: a person who met a
  friction signal at a touchpoint, a journey that dropped off at a stage, a journey that
  reached a stage and had not moved on when its window closed (first for a drop-off alert:
  they show a stall before any time limit passes);
- per window start, the drop-offs of every stage scope and how many of them had met each
  friction signal (the stage windows' `dropped` and `saw:<label>` counters), from which an
  alert about a stage says what share of the journeys that dropped there saw what.

The cause names a stage whose entrants stopped moving on (progressions seen against those
expected at the entrants' age), what collapsed (a source that fell silent, a stage nobody
reaches), the
signal most of the journeys that dropped had met (for a drop-off alert at its stage, for an
entries collapse at any stage of its journey and channel), and what rose with it, in the
alert's channels. Examples come from the alert's windows and series:
the touchpoint's friction, the stage's drop-offs, and for a collapse the drop-offs of the
same journey. Kept for `keep_windows` windows; pure, persisted per window start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from operator import eq
from typing import Any

from stream_processors.friction.alerts.core.causes import likely_cause, place
from stream_processors.friction.alerts.core.incident_records import epoch_ms
from stream_processors.friction.alerts.core.records import AlertRecord, Example
from stream_processors.friction.alerts.core.routing import dimensions
from stream_processors.friction.core.rules import Series
from stream_processors.friction.core.series import ALL_CHANNELS, DROPPED, FRICTION, SAW, STAGE
from stream_processors.friction.core.windows import Advance
from stream_processors.journeys.core.signals import label_text

FRICTION_EXAMPLE = "friction"  # example scope prefixes: "friction|web:/checkout"
DROPOFF_EXAMPLE = "stage"
ENTRY_EXAMPLE = "entry"  # a journey that reached a stage and had not moved on by its close
REFERENCES = "references"


@dataclass(frozen=True, slots=True)
class ContextConfig:
    window: timedelta = timedelta(minutes=5)
    reference_windows: int = 12  # before an alert's start: what normal looked like
    now_windows: int = 2  # the last windows of its evidence: what is happening
    keep_windows: int = 36
    examples: int = 3


def example_scope(kind: str, scope: str) -> str:
    return f"{kind}|{scope}"


class AlertContext:
    """Recent windows and examples; see the module docstring."""

    def __init__(self, config: ContextConfig | None = None) -> None:
        self.config = config or ContextConfig()
        self._size = int(self.config.window.total_seconds() * 1000)
        self._friction: dict[int, dict[str, dict[str, int]]] = {}
        self._examples: dict[int, dict[str, list[Example]]] = {}
        self._dropped: dict[int, dict[str, dict[str, int]]] = {}  # start -> stage scope -> ...
        self._references: dict[str, tuple[int, dict[str, dict[str, int]]]] = {}
        # Per alert, the stall its drop-off series showed last (scope, moved on, expected):
        # the deadline's drop-offs later become its latest evidence, and the cause must
        # still say that the entrants stopped moving on.
        self._stalled: dict[str, tuple[str, int, float]] = {}
        self.touched: set[int] = set()
        self.evicted: set[int] = set()
        self.references_changed = False

    # -- input --------------------------------------------------------------------------------

    def observe(self, advance: Advance) -> None:
        """Keep the friction counters and the stages' drop-offs with what they saw, of every
        window version closed or re-emitted."""
        for window in advance.windows:
            kind, scope = window.key
            if kind == STAGE:
                self._observe_dropped(window.start_ms, scope, window.counts)
            if kind != FRICTION or scope.endswith(":*"):
                continue
            self._friction.setdefault(window.start_ms, {})[scope] = dict(window.counts)
            self.touched.add(window.start_ms)
        if len(advance.closed):
            self._evict(advance.closed.stop)

    def _observe_dropped(self, start: int, scope: str, counts: Mapping[str, int]) -> None:
        kept = {n: c for n, c in counts.items() if c > 0 and (n == DROPPED or n.startswith(SAW))}
        held = self._dropped.get(start)
        if kept.get(DROPPED):
            if held is None:
                held = self._dropped[start] = {}
            held[scope] = kept
        elif held is None or held.pop(scope, None) is None:
            return  # nothing dropped there, and nothing was held (most stage windows)
        self.touched.add(start)

    def add_examples(self, start_ms: int, scope: str, examples: Iterable[Example]) -> None:
        """Examples a partition picked for one window and example scope; a few are kept."""
        held = self._examples.setdefault(start_ms, {}).setdefault(scope, [])
        for example in examples:
            if len(held) < self.config.examples * 4:
                held.append(example)
        held.sort(key=lambda e: (e.at_ms, e.person_id))
        self.touched.add(start_ms)

    def _evict(self, frontier_ms: int) -> None:
        oldest = frontier_ms - self.config.keep_windows * self._size
        held = self._friction.keys() | self._examples.keys() | self._dropped.keys()
        for start in [s for s in held if s < oldest]:
            self._friction.pop(start, None)
            self._examples.pop(start, None)
            self._dropped.pop(start, None)
            self.evicted.add(start)
            self.touched.discard(start)

    # -- what an alert says -------------------------------------------------------------------

    def remember_reference(self, alert_id: str, started_ms: int) -> None:
        """Freeze the windows before an alert's start as its picture of normal."""
        if alert_id in self._references:
            return
        n = self.config.reference_windows
        starts = [started_ms - k * self._size for k in range(1, n + 1)]
        held = [s for s in starts if s in self._friction]
        self._references[alert_id] = (len(held), _sum(self._friction[s] for s in held))
        self.references_changed = True

    def keep_references(self, alert_ids: Iterable[str]) -> None:
        keep = set(alert_ids)
        for gone in [a for a in self._references if a not in keep]:
            del self._references[gone]
            self.references_changed = True
        for gone in [a for a in self._stalled if a not in keep]:
            del self._stalled[gone]
            self.references_changed = True

    def cause(self, record: AlertRecord) -> str:
        parts = [_stall_text(s.scope, o, e) for s, o, e in self._stalls_of(record)]
        parts += [_collapse_text(s, o, e) for s, o, e in _collapses(record)]
        windows, before = self._references.get(record.incident_id, (0, {}))
        end = epoch_ms(record.last_window_end)
        now_starts = [end - k * self._size for k in range(1, self.config.now_windows + 1)]
        held = [s for s in now_starts if s in self._friction]
        channels = _channels(record)
        now = {
            scope: counts
            for scope, counts in _sum(self._friction[s] for s in held).items()
            if not channels or scope.split(":", 1)[0] in channels
        }
        who, dropped, dropped_total = self._seen(record, now_starts)
        cause = likely_cause(
            place(record.series),
            now,
            before,
            dropped=dropped,
            dropped_total=dropped_total,
            dropped_who=who,
            now_windows=max(len(held), 1),
            before_windows=max(windows, 1),
        )
        if cause.rises or cause.seen or not parts:
            parts.append(cause.sentence)
        return "; ".join(parts)

    def _stalls_of(self, record: AlertRecord) -> list[tuple[Series, int, float]]:
        """The alert's stalls now, or the last one it showed (kept for the alert's life)."""
        # A stage on one channel before the stage on all of them: it says where.
        now = sorted(_stalls(record), key=lambda f: f[0].scope.endswith(":*"))
        if now:
            series, observed, expected = now[0]
            self._stalled[record.incident_id] = (series.scope, observed, expected)
            self.references_changed = True
            return now
        kept = self._stalled.get(record.incident_id)
        if kept is None:
            return []
        scope, observed, expected = kept
        return [(Series("dropoff", scope, "dropoff"), observed, expected)]

    def _seen(
        self, record: AlertRecord, starts: list[int]
    ) -> tuple[str | None, dict[str, int], int]:
        """Who dropped (in the sentence's words), how many of them saw each signal (labels
        as people read them) and how many dropped, in the windows `starts`."""
        found = _dropped_scopes(record)
        if found is None:
            return None, {}, 0
        who, wanted = found
        seen: dict[str, int] = {}
        total = 0
        for start in starts:
            for scope, counts in self._dropped.get(start, {}).items():
                if not wanted(scope):
                    continue
                total += counts.get(DROPPED, 0)
                for name, n in counts.items():
                    if name.startswith(SAW):
                        text = label_text(name[len(SAW) :])
                        seen[text] = seen.get(text, 0) + n
        return who, seen, total

    def examples_for(self, record: AlertRecord) -> tuple[Example, ...]:
        begin, end = epoch_ms(record.started_at), epoch_ms(record.last_window_end)
        wanted = set()
        for series in [record.series, *(r.series for r in record.related)]:
            wanted |= _example_scopes(series)
        found: dict[str, tuple[bool, Example]] = {}
        for start in sorted(self._examples):
            if not begin <= start < end:
                continue
            for scope, examples in sorted(self._examples[start].items()):
                if any(_matches(scope, w) for w in wanted):
                    # Entrants that had not moved on show a stall before any deadline passes:
                    # they come first.
                    stalled = scope.startswith(ENTRY_EXAMPLE + "|")
                    for example in examples:
                        found.setdefault(example.person_id, (not stalled, example))
        ordered = sorted(found.values(), key=lambda f: (f[0], f[1].at_ms, f[1].person_id))
        return tuple(e for _, e in ordered[: self.config.examples])

    @property
    def examples(self) -> dict[int, dict[str, list[Example]]]:
        """The examples held, per window start and example scope; whoever changes them adds
        the start to `touched` (an erasure: stream_processors/privacy/forget.py)."""
        return self._examples

    # -- persistence --------------------------------------------------------------------------

    def take_changes(self) -> tuple[set[int], set[int]]:
        touched, evicted = self.touched, self.evicted
        self.touched, self.evicted = set(), set()
        return touched - evicted, evicted

    def snapshot_start(self, start: int) -> dict[str, Any] | None:
        friction, examples = self._friction.get(start), self._examples.get(start)
        dropped = self._dropped.get(start)
        if friction is None and examples is None and not dropped:
            return None
        return {
            "f": friction or {},
            "e": {s: [e.to_dict() for e in ex] for s, ex in (examples or {}).items()},
            "d": dropped or {},
        }

    def snapshot_references(self) -> dict[str, Any]:
        self.references_changed = False
        held: dict[str, Any] = {a: [n, counts] for a, (n, counts) in self._references.items()}
        for a, stall in self._stalled.items():
            held.setdefault(a, [0, {}]).append(list(stall))
        return held

    def restore(self, starts: Mapping[int, dict[str, Any]], references: dict[str, Any]) -> None:
        self._friction.clear()
        self._examples.clear()
        self._dropped.clear()
        for start, data in starts.items():
            if data.get("d"):  # absent in what was written before drop-offs were kept
                self._dropped[start] = {s: dict(c) for s, c in data["d"].items()}
            if data["f"]:
                self._friction[start] = {s: dict(c) for s, c in data["f"].items()}
            if data["e"]:
                self._examples[start] = {
                    s: [Example.from_dict(e) for e in ex] for s, ex in data["e"].items()
                }
        # [n, counts] as written before stalls were kept, [n, counts, stall] since.
        self._references = {a: (int(v[0]), v[1]) for a, v in references.items()}
        self._stalled = {
            a: (str(v[2][0]), int(v[2][1]), float(v[2][2]))
            for a, v in references.items()
            if len(v) > 2
        }
        self.touched.clear()
        self.evicted.clear()


def _sum(windows: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for window in windows:
        for scope, counts in window.items():
            into = total.setdefault(scope, {})
            for name, n in counts.items():
                into[name] = into.get(name, 0) + n
    return total


def _channels(record: AlertRecord) -> set[str]:
    """The channels an alert is about (none: all of them)."""
    found = set()
    for series in [record.series, *(r.series for r in record.related)]:
        channel = dimensions(series).get("channel")
        if channel and channel != "*":
            found.add(channel)
    return found


def _collapses(record: AlertRecord) -> list[tuple[Series, int, float | None]]:
    items = [(record.series, record.kind, record.status, record.observed, record.expected)]
    items += [(r.series, r.kind, r.status, r.observed, r.expected) for r in record.related]
    return [
        (series, observed, expected)
        for series, kind, status, observed, expected in items
        if kind in ("volume_collapse", "entries_collapse") and status != "retracted"
    ]


def _stalls(record: AlertRecord) -> list[tuple[Series, int, float]]:
    """The drop-off series of an alert whose latest evidence is its entrants in flight: the
    one drop-off evidence with fewer observed than expected (progressions, not drop-offs)."""
    items = [(record.series, record.kind, record.status, record.observed, record.expected)]
    items += [(r.series, r.kind, r.status, r.observed, r.expected) for r in record.related]
    return [
        (series, observed, expected)
        for series, kind, status, observed, expected in items
        if kind == "dropoff_spike"
        and status != "retracted"
        and expected is not None
        and observed < expected
    ]


def _stall_text(scope: str, observed: int, expected: float) -> str:
    where = place(Series("dropoff", scope, "dropoff"))
    return (
        f"entrants at {where} stopped moving on: {observed} moved on vs "
        f"{expected:.1f} expected at their age"
    )


def _collapse_text(series: Series, observed: int, expected: float | None) -> str:
    figures = f"{observed} vs {expected:.1f} expected" if expected is not None else f"{observed}"
    if series.kind == "volume":
        channel, _, source = series.scope.partition(":")
        return f"source {source} ({channel}) went quiet: {figures} events per window"
    return f"journeys stopped reaching {place(series)}: {figures} per window"


def _dropped_scopes(record: AlertRecord) -> tuple[str, Callable[[str], bool]] | None:
    """Whose drop-offs explain an alert, in the sentence's words, and which stage scopes
    hold them: those of a drop-off series at its stage (the headline's, else a related
    one's); for an entries collapse, those at every stage of its journey on its channel
    (journeys that no longer reach a stage drop off before it)."""
    every = [record.series, *(r.series for r in record.related)]
    for series in every:
        if series.kind == "dropoff":
            return f"journeys that dropped at {place(series)}", partial(eq, series.scope)
    for series in every:
        parts = series.scope.split(":")
        if series.kind == "entries" and len(parts) == 3:
            journey, _, channel = parts
            where = "" if channel == ALL_CHANNELS else f" on {channel}"
            return f"{journey} journeys that dropped{where}", _journey_scopes(journey, channel)
    return None


def _journey_scopes(journey: str, channel: str) -> Callable[[str], bool]:
    def wanted(scope: str) -> bool:
        parts = scope.split(":")
        return len(parts) == 3 and parts[0] == journey and parts[2] == channel

    return wanted


def _example_scopes(series: Series) -> set[str]:
    dims = dimensions(series)
    if series.kind == "friction":
        return {example_scope(FRICTION_EXAMPLE, series.scope)}
    if series.kind == "dropoff":
        return {
            example_scope(DROPOFF_EXAMPLE, series.scope),
            example_scope(ENTRY_EXAMPLE, series.scope),
        }
    if series.kind == "entries" and "journey" in dims:
        return {example_scope(DROPOFF_EXAMPLE, f"{dims['journey']}:*")}
    return set()


def _matches(scope: str, wanted: str) -> bool:
    """`wanted` may end in `*` (all touchpoints of a channel, all channels of a stage)."""
    if wanted.endswith("*"):
        return scope.startswith(wanted[:-1])
    return scope == wanted
