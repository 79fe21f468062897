"""The partitioned half of the friction stage: one partition's events into windows, and its
closed windows to the detector (docs/stages/friction.md).

Three agents feed one `PartitionFriction` per partition (faust gives a worker the same
partition numbers of `stitched`, `journey-transitions` and `journey-dropoffs`: same count):

- `stitched`: friction and volume series through `FrictionSeries` (signals by the mapping
  file, repeat contacts); the envelope's watermark with its `source` moves the partition's
  `stitched` time, the minimum over all `touchpoints` partitions;
- `journey-transitions`: a journey reaching a stage counts `entered` there on the channel of
  the event that moved it, and `progressed` (with its age, `progressed+<k>`) at the stage it
  left on the channel that stage was reached on (`from_channel`); a transition sent
  again (a late event re-folded the journey) first takes back what the version before it
  counted, and a retracted one only takes back;
- `journey-dropoffs`: `dropped` at the stage, on its `stage_channel`, and one
  `saw:<label>` there per friction signal the journey had met (the row's `signals`); a
  retraction row (same id, `retracted: true`) takes both back.

What a transition or drop-off counted is remembered by its id for as long as its window
can still change (`allowed_lateness`; a late channel's, `journeys.late_tolerance`), so a
correction subtracts exactly that.

The partition's time is the minimum of the three inputs' watermarks (the journeys stage's
time is never ahead of `stitched`, and its drop-offs are decided by it). Each advance that
closes or re-emits windows sends them to `friction-partials`, with the examples picked in
the windows it closed and the partition's frontier.

State, in the `windows` table (the other two tables hold their inputs' applied offsets):
one key per window start, per person with recent contacts, per remembered transition or
drop-off, and the watermarks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from schemas import envelope
from schemas.friction import FrictionMapping, Signal
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.core.event_shape import (
    dropoff_problems,
    split,
    stitched_problems,
    transition_problems,
)
from stream_processors.core.friction_signals import FrictionMatcher
from stream_processors.core.watermarks import SourceWatermarks
from stream_processors.friction import metrics as friction_metrics
from stream_processors.friction.alerts.core.context import (
    DROPOFF_EXAMPLE,
    ENTRY_EXAMPLE,
    FRICTION_EXAMPLE,
    example_scope,
)
from stream_processors.friction.alerts.core.records import Example
from stream_processors.friction.core.series import (
    DROPPED,
    ENTERED,
    PROGRESSED,
    FrictionSeries,
    count_progress,
    count_seen,
    count_stage,
    late_channel_keys,
)
from stream_processors.friction.core.series import STAGE as STAGE_SERIES
from stream_processors.friction.core.window_state import (
    RecordedRepeats,
    RecordedWindows,
    recorded_series,
)
from stream_processors.friction.rows import StateWriter, examples_row, window_row
from stream_processors.journeys.core.signals import MAX_LABELS
from stream_processors.runtime import metrics
from stream_processors.runtime.dead_letters import StageDeadLetters, Where
from stream_processors.runtime.sender import TransactionalSender
from stream_processors.runtime.state import ChangelogTable, PartitionState

log = logging.getLogger(__name__)

STAGE = "friction"
WINDOWS_META = "\x00windows"
MARKS_KEY = "\x00sources"  # `stitched` sources' watermarks, and the journeys topics'
START = "w"  # key prefixes: window start, person with contacts, counted record
PERSON = "r"
COUNTED = "c"
TRANSITIONS, DROPOFFS = "transitions", "dropoffs"
DAY_MS = 86_400_000
# What a remembered transition or drop-off counted, counted again with amount +1 or -1.
Counting = Callable[["PartitionFriction", list[Any], int], None]


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


@dataclass(slots=True)
class PartitionFriction:
    """One partition's windows and what they need to stay exact across restarts."""

    windows: RecordedWindows
    series: FrictionSeries
    repeats: RecordedRepeats | None
    marks: SourceWatermarks
    journeys: dict[str, int]  # TRANSITIONS / DROPOFFS -> the journeys stage's watermark
    counted: dict[str, list[Any]]  # transition or drop-off id -> what it counted
    state: PartitionState  # the table's, to notice a restore
    examples: dict[int, dict[str, list[Example]]] = field(default_factory=dict)
    counted_dirty: set[str] = field(default_factory=set)
    # The remembered ids by the window start of what they counted, to forget them without
    # looking at all (late channels' are kept for days); `later` holds those kept past the
    # allowed lateness. Not written: rebuilt from `counted` on restore. An id counted again
    # at another time is found in its new bucket; the old entry is skipped.
    expiry: dict[int, set[str]] = field(default_factory=dict)
    later: dict[int, set[str]] = field(default_factory=dict)
    marks_changed: bool = False
    writer: StateWriter = field(init=False)

    def __post_init__(self) -> None:
        self.writer = StateWriter(self.state)

    def time(self, stage_series: bool) -> int | None:
        """The partition's event time: the minimum over its inputs, once all have one."""
        low = self.marks.low
        if low is None or not stage_series:
            return low
        if len(self.journeys) < 2:
            return None
        return min(low, *self.journeys.values())


@dataclass
class FrictionPartitions:
    settings: Settings
    topics: Topics
    sender: TransactionalSender
    windows: ChangelogTable  # follows `stitched`, holds the state
    transitions: ChangelogTable
    dropoffs: ChangelogTable
    mapping: FrictionMapping
    _parts: dict[int, PartitionFriction] = field(default_factory=dict)
    # Whether a person id is erased (the suppression list; stream_processors/privacy): their
    # examples are not kept, not even from input that was on its way before the erasure.
    erased: Callable[[str], bool] | None = None

    def __post_init__(self) -> None:
        f = self.settings.friction
        self.size_ms = _ms(f.window)
        self.lateness_ms = _ms(f.allowed_lateness)
        # Late channels' series (a call center's daily export) stay countable for as long as
        # the journeys stage takes their events (docs/concepts.md §5).
        self.late_keys = late_channel_keys(self.settings.processor.late_channels)
        self.late_lateness = max(self.settings.journeys.late_tolerance, f.allowed_lateness)
        self.late_channels = frozenset(self.settings.processor.late_channels)
        self.matcher = FrictionMatcher(self.mapping)
        self.examples_per_window = f.examples
        self._seconds: dict[str, int] = {}  # the clocks' shared cache of parsed seconds
        self.windows.before_flush.append(self.persist)
        self.dead_letters = StageDeadLetters(STAGE, self.topics.dlq_friction, self.sender)

    # -- partitions ---------------------------------------------------------------------------

    def part(self, partition: int) -> PartitionFriction:
        state = self.windows[partition]
        part = self._parts.get(partition)
        if part is None or part.state is not state:
            part = self._parts[partition] = self._restore(state)
        return part

    def _new_part(self, state: PartitionState) -> PartitionFriction:
        f = self.settings.friction
        # Drop-offs and transitions carry no backfill flag: their windows follow the events'.
        windows = RecordedWindows(
            f.window,
            f.allowed_lateness,
            follow_traffic=frozenset({STAGE_SERIES}),
            late_keys=self.late_keys,
            late_lateness=self.late_lateness,
        )
        rule = self.mapping.repeat_contacts
        repeats = RecordedRepeats(int(rule.within_days * DAY_MS)) if rule is not None else None
        series = recorded_series(
            self.matcher,
            windows,
            repeats,
            max_touchpoints=f.max_touchpoints,
            seconds=self._seconds,
        )
        marks = SourceWatermarks(self.settings.topics.partitions)
        return PartitionFriction(windows, series, repeats, marks, {}, {}, state)

    def _restore(self, state: PartitionState) -> PartitionFriction:
        part = self._new_part(state)
        data = state.data
        starts: dict[int, list[list[Any]]] = {}
        for key, value in data.items():
            if key.startswith(START):
                start = int(key[1:])
                starts[start] = value["k"]
                if value.get("x"):
                    part.examples[start] = {
                        s: [Example.from_dict(e) for e in ex] for s, ex in value["x"].items()
                    }
            elif key.startswith(PERSON) and part.repeats is not None:
                part.repeats.restore_person(key[1:], value)
            elif key.startswith(COUNTED):
                part.counted[key[1:]] = value
                at = int(value[0])
                part.expiry.setdefault(at - at % self.size_ms, set()).add(key[1:])
        part.windows.restore(data.get(WINDOWS_META), starts)
        marks = data.get(MARKS_KEY) or {}
        part.marks = SourceWatermarks.restore(self.settings.topics.partitions, marks.get("s", ()))
        part.journeys = {str(k): int(v) for k, v in (marks.get("j") or {}).items()}
        log.info(
            "friction windows restored",
            extra={"windows": part.windows.open_windows(), "counted": len(part.counted)},
        )
        data.clear()  # the objects hold it now; the table only needs what changes
        return part

    def persist(self) -> None:
        """Write what changed since the last transaction into the table (sent with it)."""
        for partition, part in list(self._parts.items()):
            state = self.windows.partitions.get(partition)
            if state is not part.state:
                del self._parts[partition]  # revoked or restored since
                continue
            part.writer.begin()
            put = part.writer.put
            touched, evicted = part.windows.take_changes()
            for start in touched:
                held = part.windows.snapshot_start(start)
                examples = part.examples.get(start, {})
                put(
                    f"{START}{start}",
                    None
                    if held is None
                    else {
                        "k": held,
                        "x": {s: [e.to_dict() for e in ex] for s, ex in examples.items()},
                    },
                )
            for start in evicted:
                put(f"{START}{start}", None)
            if touched or evicted:
                put(WINDOWS_META, part.windows.snapshot_meta())
            if part.repeats is not None:
                for person in part.repeats.take_changes():
                    put(f"{PERSON}{person}", part.repeats.snapshot_person(person))
            for rid in part.counted_dirty:
                put(f"{COUNTED}{rid}", part.counted.get(rid))
            part.counted_dirty.clear()
            if part.marks_changed:
                put(MARKS_KEY, {"s": part.marks.snapshot(), "j": part.journeys})
                part.marks_changed = False

    # -- inputs -------------------------------------------------------------------------------

    def handle_stitched(self, payload: bytes | None, partition: int, offset: int) -> None:
        if offset <= self.windows.applied_offset(partition):
            metrics.REDELIVERED.labels(STAGE).inc()
            return
        where = Where(self.topics.stitched, partition, offset)
        decoded = self._decode(payload, where)
        part = self.part(partition)
        if decoded is not None:
            count = part.series.count
            events, bad = split(decoded.events, stitched_problems)
            if bad:
                self.dead_letters.events(bad, where)
            for event in events:
                signals = count(event)
                if signals and self.examples_per_window:
                    self._friction_example(part, event, signals)
            metrics.EVENTS_IN.labels(STAGE).inc(len(decoded.events))
            if decoded.watermark_ms is not None and decoded.source is not None:
                before = part.marks.low
                part.marks.hear(decoded.source, decoded.watermark_ms)
                part.marks_changed = True
                if part.marks.low != before:
                    self._advance(part, partition)
        self.windows.mark_applied(partition, offset, None)

    def handle_transitions(self, payload: bytes | None, partition: int, offset: int) -> None:
        self._handle_journeys(self.transitions, TRANSITIONS, payload, partition, offset)

    def handle_dropoffs(self, payload: bytes | None, partition: int, offset: int) -> None:
        self._handle_journeys(self.dropoffs, DROPOFFS, payload, partition, offset)

    def _handle_journeys(
        self, table: ChangelogTable, what: str, payload: bytes | None, partition: int, offset: int
    ) -> None:
        if offset <= table.applied_offset(partition):
            metrics.REDELIVERED.labels(STAGE).inc()
            return
        topic = (
            self.topics.journey_transitions if what == TRANSITIONS else self.topics.journey_dropoffs
        )
        where = Where(topic, partition, offset)
        decoded = self._decode(payload, where)
        part = self.part(partition)
        watermark = None
        if decoded is not None:
            if what == TRANSITIONS:
                count, problems = self._transition, transition_problems
            else:
                count, problems = self._dropoff, dropoff_problems
            rows, bad = split(decoded.events, problems)
            if bad:
                self.dead_letters.events(bad, where)
            for row in rows:
                count(part, row)
            watermark = decoded.watermark_ms
            if watermark is not None and watermark > part.journeys.get(what, watermark - 1):
                part.journeys[what] = watermark
                part.marks_changed = True
                self._advance(part, partition)
        table.mark_applied(partition, offset, watermark)

    def _decode(self, payload: bytes | None, where: Where) -> envelope.Decoded | None:
        try:
            return envelope.decode(payload or b"")
        except envelope.EnvelopeError as exc:
            # Only Journeys stages write these topics: anything else is kept, with why.
            self.dead_letters.message(payload, exc, where)
            return None

    # -- stage series ---------------------------------------------------------------------------

    def _transition(self, part: PartitionFriction, row: Mapping[str, Any]) -> None:
        rid = f"t{row['transition_id']}"
        new = None
        if not row.get("retracted"):
            at = round(float(row["at"]) * 1000)
            channel = row["channel"]
            elapsed = row.get("elapsed_ms")
            # The stage left is counted where it was reached: rows written before they
            # carried `from_channel` fall back to the channel that moved the journey.
            from_channel = row.get("from_channel") or channel
            entered = None
            if isinstance(elapsed, int | float) and not isinstance(elapsed, bool):
                entered = at - int(elapsed)
            stages = [row["definition_id"], row.get("from_stage"), row["to_stage"]]
            new = [at, *stages, channel, from_channel, entered]
            if rid not in part.counted and self.examples_per_window:
                self._entry_example(part, row, at)
                if entered is not None and row.get("from_stage"):
                    self._progressed(part, row, entered)
        self._recount(part, rid, new, self._count_transition)

    def _dropoff(self, part: PartitionFriction, row: Mapping[str, Any]) -> None:
        rid = f"d{row['dropoff_id']}"
        new = None
        if not row.get("retracted"):
            at = round(float(row["dropped_at"]) * 1000)
            channel = row.get("stage_channel") or row["last_channel"]
            new = [at, row["definition_id"], row["stage"], channel, _labels(row)]
            if rid not in part.counted and self.examples_per_window:
                self._dropoff_example(part, row, at)
        self._recount(part, rid, new, self._count_dropoff)

    def _recount(
        self, part: PartitionFriction, rid: str, new: list[Any] | None, count: Counting
    ) -> None:
        old = part.counted.get(rid)
        if old == new:
            return
        if old is not None:
            count(part, old, -1)
        if new is not None:
            count(part, new, 1)
            part.counted[rid] = new
            if old is None or old[0] != new[0]:
                at = new[0]
                part.expiry.setdefault(at - at % self.size_ms, set()).add(rid)
        else:
            part.counted.pop(rid, None)
        part.counted_dirty.add(rid)

    @staticmethod
    def _count_transition(part: PartitionFriction, c: list[Any], amount: int) -> None:
        # [at, journey, from, to, channel, from_channel, from_entered_ms]; remembered before
        # from_channel: the first five (taken back as they were counted).
        at, journey, from_stage, to_stage, channel = c[:5]
        windows = part.windows
        windows.note(at)
        count_stage(windows, journey, to_stage, channel, what=ENTERED, at_ms=at, amount=amount)
        if not from_stage:
            return
        if len(c) < 7:
            count_stage(
                windows, journey, from_stage, channel, what=PROGRESSED, at_ms=at, amount=amount
            )
            return
        # Its age only when it moved on where it reached the stage: the in-flight test
        # follows a stage's own channel (a store sale after a web checkout, often in a late
        # export, is a drop-off's retraction, not a stall's cure).
        entered = c[6] if c[5] == channel else None
        count_progress(
            windows, journey, from_stage, c[5], at_ms=at, entered_ms=entered, amount=amount
        )

    @staticmethod
    def _count_dropoff(part: PartitionFriction, c: list[Any], amount: int) -> None:
        # [at, journey, stage, channel, labels]; remembered before labels: the first four.
        at, journey, stage, channel = c[:4]
        part.windows.note(at)
        count_stage(part.windows, journey, stage, channel, what=DROPPED, at_ms=at, amount=amount)
        if len(c) > 4 and c[4]:
            count_seen(part.windows, journey, stage, channel, c[4], at_ms=at, amount=amount)

    # -- examples -------------------------------------------------------------------------------

    def _friction_example(
        self, part: PartitionFriction, event: Mapping[str, Any], signals: tuple[Signal, ...]
    ) -> None:
        friction = [s.value for s in signals if not s.positive]
        person, touchpoint = event.get("person_id"), event.get("touchpoint")
        if not friction or not person or not touchpoint:
            return
        at = part.series.clock.ms(event)
        scope = example_scope(FRICTION_EXAMPLE, f"{event['channel']}:{touchpoint}")
        example = Example(str(person), at, event["channel"], touchpoint, ", ".join(friction))
        self._keep_example(part, at, scope, example)

    def _dropoff_example(self, part: PartitionFriction, row: Mapping[str, Any], at: int) -> None:
        channel = row.get("stage_channel") or row["last_channel"]
        scope = example_scope(DROPOFF_EXAMPLE, f"{row['definition_id']}:{row['stage']}:{channel}")
        example = Example(
            str(row["person_id"]),
            at,
            row["last_channel"],
            row.get("last_touchpoint"),
            f"dropped off at {row['stage']}",
            row.get("journey_id"),
        )
        self._keep_example(part, at, scope, example)

    def _entry_example(self, part: PartitionFriction, row: Mapping[str, Any], at: int) -> None:
        """A journey that just reached a stage: an example of the stage's entrants, for an
        alert that they stopped moving on (`_progressed` takes it back if it moves on
        before its window closes)."""
        scope = example_scope(
            ENTRY_EXAMPLE, f"{row['definition_id']}:{row['to_stage']}:{row['channel']}"
        )
        example = Example(
            str(row["person_id"]),
            at,
            row["channel"],
            row.get("touchpoint"),
            f"reached {row['to_stage']}, had not moved on when its window closed",
            row.get("journey_id"),
        )
        self._keep_example(part, at, scope, example)

    def _progressed(self, part: PartitionFriction, row: Mapping[str, Any], entered: int) -> None:
        """A journey left the stage it was an entrant example of: not an example of a stall."""
        held = part.examples.get(entered - entered % self.size_ms)
        channel = row.get("from_channel") or row["channel"]
        scope = example_scope(
            ENTRY_EXAMPLE, f"{row['definition_id']}:{row['from_stage']}:{channel}"
        )
        if held is None or scope not in held:
            return
        kept = [e for e in held[scope] if e.journey_id != row.get("journey_id")]
        if len(kept) != len(held[scope]):
            held[scope] = kept
            part.windows.touched.add(entered - entered % self.size_ms)

    def _keep_example(self, part: PartitionFriction, at: int, scope: str, example: Example) -> None:
        start = at - at % self.size_ms
        frontier = part.windows.frontier_ms
        if frontier is not None and start < frontier:
            return  # its window has closed: examples travel with the first close only
        held = part.examples.setdefault(start, {}).setdefault(scope, [])
        if len(held) < self.examples_per_window:
            if self.erased is not None and self.erased(example.person_id):
                return
            held.append(example)
            part.windows.touched.add(start)

    # -- time -----------------------------------------------------------------------------------

    def _advance(self, part: PartitionFriction, partition: int) -> None:
        """Close what the partition's time allows and send it to the detector."""
        time = part.time(self.settings.friction.stage_series)
        if time is None:
            return
        advance = part.series.advance(time)
        if not advance.windows and not len(advance.closed):
            return
        rows = [window_row(w) for w in advance.windows]
        frontier = part.windows.frontier_ms
        for start in [s for s in part.examples if frontier is None or s < frontier]:
            for scope, examples in sorted(part.examples.pop(start).items()):
                rows.append(examples_row(scope, start, examples))
        # The frontier goes with the last part: the detector must have every window first.
        self.sender.produce_rows(self.topics.friction_partials, rows, frontier, 0, partition)
        closed = len(advance.closed)
        if closed:
            friction_metrics.FRICTION_WINDOWS_CLOSED.labels("partition").inc(closed)
            self._forget_counted(part, frontier)
        reemitted = sum(1 for w in advance.windows if w.previous is not None)
        if reemitted:
            friction_metrics.FRICTION_WINDOWS_REEMITTED.labels("partition").inc(reemitted)

    def _forget_counted(self, part: PartitionFriction, frontier: int | None) -> None:
        """Corrections older than the windows they would change can change nothing: an id is
        forgotten once the window of what it counted is past the allowed lateness (a late
        channel's: past the late tolerance)."""
        if frontier is None or not (part.expiry or part.later):
            return
        size = self.size_ms
        horizon = frontier - size - self.lateness_ms
        late_horizon = frontier - size - _ms(self.late_lateness)
        for start in [s for s in part.expiry if s + size <= horizon]:
            for rid in part.expiry.pop(start):
                c = part.counted.get(rid)
                if c is None or c[0] - c[0] % size != start:
                    continue  # forgotten, or counted again at another time
                if start + size > late_horizon and self._late_record(rid, c):
                    part.later.setdefault(start, set()).add(rid)
                    continue  # a late channel's window it counted in can still change
                del part.counted[rid]
                part.counted_dirty.add(rid)
        for start in [s for s in part.later if s + size <= late_horizon]:
            for rid in part.later.pop(start):
                c = part.counted.get(rid)
                if c is not None and c[0] - c[0] % size == start:
                    del part.counted[rid]
                    part.counted_dirty.add(rid)

    def _late_record(self, rid: str, c: list[Any]) -> bool:
        """A remembered transition or drop-off counted on a late channel."""
        if not self.late_channels:
            return False
        # Transitions: [at, journey, from, to, channel, from_channel, ...]; drop-offs:
        # [at, journey, stage, channel, ...].
        channels = c[4:6] if rid.startswith("t") else c[3:4]
        return any(channel in self.late_channels for channel in channels)

    def late_dropped(self) -> int:
        return sum(p.windows.late_dropped for p in self._parts.values())


def _labels(row: Mapping[str, Any]) -> list[str]:
    """A drop-off row's signal labels, each once, as many as the journeys stage keeps."""
    found: list[str] = []
    for label in row.get("signals") or ():
        if isinstance(label, str) and label not in found:
            found.append(label)
    return found[-MAX_LABELS:]
