"""The journeys stage: `stitched` (keyed by person) -> journeys, stage transitions, drop-offs,
retractions and sessions, decided in event time by the journey core (ARCHITECTURE.md
"Journeys").

Three agents in one faust app; their topics have the same partition count, so faust gives a
worker the same partition numbers of all three, and one `JourneyCore` per partition serves
them:
- `journeys` on `stitched`: events into the core; the envelope's watermark (with its
  `source`) moves the partition's event time, the minimum over all `touchpoints` partitions;
- `merges` on `identity-merges`: the authority joined person `old` into `new`, effective at
  the link's event time. Both on this partition: the core moves the person when time reaches
  the link. Otherwise the old person's state goes to `new`'s partition through
  `journey-handoff` at once, and events still stamped `old` follow it there for the alias
  lifetime; that partition keeps the old person apart until its time reaches the link;
- `handoff` on `journey-handoff`: persons and events arriving from other partitions, and
  how far every partition has read (a timer announces it): a partition's time waits for the
  slowest, which may still forward events here.

State: one changelog key per person (the core's snapshot, written once per transaction for
the persons that changed), plus the sources' watermarks and the persons in transit
(`journey_handoffs`).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson

from schemas import envelope
from schemas.definitions import DefinitionSpec, load_definitions
from schemas.friction import load_configured_mapping
from schemas.partitioning import partition_for
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.core.event_shape import merge_problems, split, stitched_problems
from stream_processors.core.friction_signals import FrictionMatcher
from stream_processors.journeys import metrics as journeys_metrics
from stream_processors.journeys.core.engine import Census, JourneyCore
from stream_processors.journeys.core.settings import JourneySettings, event_ms
from stream_processors.journeys.core.signals import mapped_signals
from stream_processors.journeys.handoffs import Outbox
from stream_processors.journeys.partition import PartitionJourneys
from stream_processors.journeys.rows import Outputs
from stream_processors.privacy.forget import SuppressionWatch, forgetting_journeys
from stream_processors.runtime import metrics
from stream_processors.runtime.app import StageRuntime, stage_runtime
from stream_processors.runtime.dead_letters import StageDeadLetters, Where
from stream_processors.runtime.flow import PartitionFlow
from stream_processors.runtime.sender import TransactionalSender
from stream_processors.runtime.state import ChangelogTable, PartitionState

log = logging.getLogger(__name__)

STAGE = "journeys"
_FREEZE_AFTER = 10_000  # persons restored; see `JourneyStage._restore`
# What one fetch takes of a partition: a partition paused for reading too far ahead still
# gets what was fetched before the pause (`_pace`), and 16 MB of `stitched` is some 50,000
# events, more than an hour of a million customers' traffic.
_FETCH_BYTES = 1024 * 1024


@dataclass
class JourneyStage:
    settings: Settings
    topics: Topics
    sender: TransactionalSender
    persons: ChangelogTable
    merges: ChangelogTable
    handoff: ChangelogTable
    definitions: list[DefinitionSpec]
    _parts: dict[int, PartitionJourneys] = field(default_factory=dict)
    _told: dict[int, int] = field(default_factory=dict)  # the read last announced, by partition
    # Stops (True) or resumes (False) reading a partition of `stitched`, in the Kafka client
    # (`stream_processors/runtime/flow.py`), wired by `build`.
    hold_back: Callable[[int, bool], None] = field(default=lambda _partition, _paused: None)
    _held_back: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        s = self.settings
        self.core_settings = JourneySettings(
            session_gap_ms=_ms(s.journeys.session_gap),
            late_channels=frozenset(s.processor.late_channels),
            late_tolerance_ms=_ms(s.journeys.late_tolerance),
        )
        self.read_ahead_ms = _ms(s.journeys.read_ahead)
        self.partitions = s.topics.partitions
        t = self.topics
        self.names = {
            "journeys": t.journey_updates,
            "transitions": t.journey_transitions,
            "dropoffs": t.journey_dropoffs,
            "retractions": t.journey_retractions,
            "sessions": t.journey_sessions,
        }
        # The friction stage's mapping names the signals a drop-off's journey met, so that
        # its alerts can say what share of the dropped journeys saw which.
        self.signals = mapped_signals(FrictionMatcher(load_configured_mapping(s.friction)))
        self.persons.before_flush.append(self.persist)
        self.dead_letters = StageDeadLetters(STAGE, t.dlq_journeys, self.sender)

    # -- partitions -----------------------------------------------------------------------

    def part(self, partition: int) -> PartitionJourneys:
        state = self.persons[partition]
        part = self._parts.get(partition)
        if part is None or part.state is not state:
            part = self._parts[partition] = self._restore(partition, state)
        return part

    def _restore(self, partition: int, state: PartitionState) -> PartitionJourneys:
        started = time.perf_counter()
        core = JourneyCore(self.definitions, self.core_settings, signals=self.signals)
        data = state.data
        part = PartitionJourneys.restore(core, self.partitions, state)
        applied = self.persons.applied[partition].watermark_ms
        if applied is not None:
            core.restore_watermark(applied)
        for pid, snapshot in data.items():
            core.restore_person(pid, snapshot)
        restored = len(data)
        # The core holds the persons now; the table only needs the keys that change.
        data.clear()
        if restored >= _FREEZE_AFTER:
            # Restored state lives long: keep full collections from walking it again.
            gc.collect()
            gc.freeze()
        log.info(
            "journeys restored",
            extra={
                "partition": partition,
                "persons": restored,
                "watermark_ms": core.watermark_ms,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return part

    def persist(self) -> None:
        """Write the snapshots of the persons changed since the last transaction (the table
        sends them in the transaction about to commit)."""
        for partition, part in list(self._parts.items()):
            state = self.persons.partitions.get(partition)
            if state is not part.state:
                del self._parts[partition]  # revoked or restored since
                self._held_back.discard(partition)
                continue
            data, dirty = state.data, state.dirty
            for key in part.written:  # sent last time: no need to hold them twice
                data.pop(key, None)
            written = part.written = []
            core = part.core
            for pid in core.take_dirty():
                snapshot = core.checkpoint(pid)
                if snapshot is not None:
                    # A frozen person's snapshot is JSON already: the table embeds it as is.
                    data[pid] = orjson.Fragment(snapshot) if type(snapshot) is bytes else snapshot
                    written.append(pid)
                dirty.add(pid)  # a key without data becomes a tombstone
            for key, value in part.take_bookkeeping():
                if value is not None:
                    data[key] = value
                    written.append(key)
                dirty.add(key)  # without data: a tombstone

    # -- inputs ---------------------------------------------------------------------------

    def handle_stitched(self, payload: bytes | None, partition: int, offset: int) -> None:
        if offset <= self.persons.applied_offset(partition):
            metrics.REDELIVERED.labels(STAGE).inc()
            return
        decoded = self._decode(payload, partition, offset, self.topics.stitched)
        part = self.part(partition)
        if decoded is not None:
            core, forward_of = part.core, part.forward_of
            pairs: list[tuple[dict[str, Any], str]] = []
            moved = Outbox(self.partitions)
            anonymous = 0
            events, bad = split(decoded.events, stitched_problems)
            if bad:
                self.dead_letters.events(bad, Where(self.topics.stitched, partition, offset))
            for event in events:
                pid = event.get("person_id")
                if not pid:
                    anonymous += 1  # no usable identifier: no person, no journey
                elif (forward := forward_of(pid)) is not None:
                    moved.event(forward[0], event, forward[1])
                else:
                    pairs.append((event, pid))
            out = Outputs()
            out.add(core.observe_batch(pairs))
            if decoded.watermark_ms is not None and decoded.source is not None:
                part.marks.hear(decoded.source, decoded.watermark_ms)
                part.marks_changed = True
                self._advance(part, out, moved)
            self._send(out, partition, part.time_known())
            self._send_moved(moved)
            self._pace(partition, part)
            metrics.EVENTS_IN.labels(STAGE).inc(len(decoded.events))
            if anonymous:
                journeys_metrics.JOURNEY_ANONYMOUS.inc(anonymous)
        self.persons.mark_applied(partition, offset, part.time_known())

    def handle_merges(self, payload: bytes | None, partition: int, offset: int) -> None:
        if offset <= self.merges.applied_offset(partition):
            metrics.REDELIVERED.labels(STAGE).inc()
            return
        decoded = self._decode(payload, partition, offset, self.topics.identity_merges)
        if decoded is not None:
            part = self.part(partition)
            out = Outputs()
            moved = Outbox(self.partitions)
            records, bad = split(decoded.events, merge_problems)
            if bad:
                self.dead_letters.events(bad, Where(self.topics.identity_merges, partition, offset))
            for record in records:
                if record.get("kind") != "merge":
                    # A move takes single identifiers, not a person: the events routed by
                    # them stay in the journeys they were folded into (noted in the docs).
                    journeys_metrics.JOURNEY_MOVES_IGNORED.inc()
                    continue
                new = record["person_id"]
                home = partition_for(new.encode(), self.partitions)
                at = record.get("event_time")
                merged_ms = None if at is None else event_ms(at)
                for old in record["old_person_ids"]:
                    if old == new:
                        continue
                    if partition_for(old.encode(), self.partitions) != partition:
                        if home == partition:
                            part.handoffs.expect(old, merged_ms)
                    elif home == partition and _ahead(merged_ms, part):
                        part.handoffs.hold(old, new, merged_ms)
                    else:
                        # The new person elsewhere: the state goes now, and that partition
                        # holds it apart until its time reaches the link. Both here, with
                        # the link not ahead: the core moves the person now.
                        self._merge(part, partition, old, new, merged_ms, out=out, moved=moved)
            announced = decoded.watermark_ms  # up to when the authority decided all links
            if announced is not None and (part.decided_ms is None or announced > part.decided_ms):
                part.decided_ms = announced
                part.merges_changed = True
            self._advance(part, out, moved)
            self._send(out, partition, part.time_known())
            self._send_moved(moved)
            self._keep_time(partition, part)
            self._pace(partition, part)
        self.merges.mark_applied(partition, offset, None)

    def handle_handoff(self, payload: bytes | None, partition: int, offset: int) -> None:
        if offset <= self.handoff.applied_offset(partition):
            metrics.REDELIVERED.labels(STAGE).inc()
            return
        decoded = self._decode(payload, partition, offset, self.topics.journey_handoff)
        if decoded is not None:
            part = self.part(partition)
            core, handoffs = part.core, part.handoffs
            out = Outputs()
            moved = Outbox(self.partitions)
            pairs: list[tuple[dict[str, Any], str]] = []
            for row in decoded.events:
                if row["kind"] == "read":
                    for source, read in row["reads"]:
                        part.reads.hear(source, read)
                    part.reads_changed = True
                    continue
                if row["kind"] == "event":
                    pid, old = row["person_id"], row.get("from")
                    forward = part.forward_of(pid)  # not None: merged on again meanwhile
                    if old is not None and handoffs.holding(old):
                        pairs.append((row["event"], old))  # its merge is still ahead
                    elif forward is not None:
                        new, here = forward
                        moved.event(new, row["event"], here if here != pid else old or pid)
                    else:
                        pairs.append((row["event"], pid))
                    continue
                out.add(core.observe_batch(pairs))
                pairs = []
                self._receive(part, row, out, moved)
            out.add(core.observe_batch(pairs))
            self._advance(part, out, moved)
            self._send(out, partition, part.time_known())
            self._send_moved(moved)
            self._keep_time(partition, part)
            self._pace(partition, part)
        self.handoff.mark_applied(partition, offset, None)

    def _receive(
        self, part: PartitionJourneys, row: dict[str, Any], out: Outputs, moved: Outbox
    ) -> None:
        """A person handed over from another partition."""
        pid, old, state = row["person_id"], row["from"], row["state"]
        handoffs = part.handoffs
        if not row.get("relay"):
            handoffs.arrived(old)
        forward = part.forward_of(pid)  # not None: merged on again meanwhile
        at = row.get("at")  # rows from before `at` was sent have none
        if forward is not None:
            if state is not None:
                moved.person(forward[0], old, state, relay=True, merged_ms=at)
                journeys_metrics.JOURNEY_HANDOFFS.labels("out").inc()
            return
        pid = part.core.resolve(pid)  # merged here into another person meanwhile
        if _ahead(at, part):
            # A person of its own until time reaches the merge, as if it had been read there.
            handoffs.hold(old, pid, at)
            pid, at = old, None
        if state is not None:
            out.add(part.core.import_person(pid, state, at))
            journeys_metrics.JOURNEY_HANDOFFS.labels("in").inc()

    # -- time -----------------------------------------------------------------------------

    def _advance(self, part: PartitionJourneys, out: Outputs, moved: Outbox) -> None:
        """Move the partition's event time as far as its inputs allow, applying each held
        merge on the way when time reaches it: what the old person's events did up to the
        link stands, as it would had the merge been read in its place."""
        watermark = part.time_to()
        core = part.core
        if watermark is None or watermark <= core.watermark_ms:
            return
        for merged_ms, old, new in part.handoffs.due(watermark):
            if merged_ms > core.watermark_ms:
                out.add(core.advance_watermark(merged_ms))
            self._apply_held(part, old, new, merged_ms, out=out, moved=moved)
        out.add(core.advance_watermark(watermark))
        out.moved = True
        part.handoffs.expire(watermark)
        journeys_metrics.JOURNEY_WATERMARK.set(watermark / 1000)

    def _pace(self, partition: int, part: PartitionJourneys) -> None:
        """Stop reading a partition's `stitched` while its input runs further ahead of its
        time than `journeys.read_ahead`, and read on once half of that is left: events read
        ahead of time wait in memory, events not read yet wait in Kafka. Asked again on
        every batch read while too far ahead, because a rebalance resumes every partition.

        No partition waits for ever: only `stitched` stops (the authority's links and the
        handoffs read on), and the partition whose input is furthest behind can always reach
        what it has read, then reads on, and the others follow it. Except a partition whose
        own time waits for a merged person on its way: paused, it would stop announcing how
        far it has read, and every other partition's time would wait on it too; so it reads
        on while that lasts."""
        ahead = part.read_ahead()
        if ahead is None:
            return
        if part.waits_on_handoffs():
            if partition in self._held_back:
                self._held_back.discard(partition)
                self.hold_back(partition, False)
        elif ahead > self.read_ahead_ms:
            self._held_back.add(partition)
            self.hold_back(partition, True)
        elif partition in self._held_back and ahead <= self.read_ahead_ms // 2:
            self._held_back.discard(partition)
            self.hold_back(partition, False)

    def held_back(self) -> int:
        """Partitions whose `stitched` reading is stopped until their time catches up."""
        return len(self._held_back)

    def _keep_time(self, partition: int, part: PartitionJourneys) -> None:
        """Time moved by an input other than `stitched` is restored with the persons too."""
        known = part.time_known()
        applied = self.persons.applied[partition]
        if known is not None and (applied.watermark_ms is None or known > applied.watermark_ms):
            self.persons.mark_applied(partition, applied.offset, known)

    # -- merges across partitions ---------------------------------------------------------

    def _apply_held(
        self,
        part: PartitionJourneys,
        old: str,
        new: str,
        merged_ms: int,
        *,
        out: Outputs,
        moved: Outbox,
    ) -> None:
        """A held merge whose time has come: `old` joins `new`, here or, when `new` left this
        partition since (merged on), where `new` went."""
        core = part.core
        forward = part.forward_of(new)
        if forward is None:
            new_here = core.resolve(new)  # merged here into another person meanwhile
            # Held here, `new` lives here. `old`'s events are read on `old`'s partition,
            # which forwards them stamped `new`: an alias here is only needed when that is
            # this partition too. (Kept for every merge from elsewhere, the aliases were
            # about a tenth of this stage's memory, and redundant.)
            partitions = self.partitions
            here = partition_for(old.encode(), partitions) == partition_for(
                new.encode(), partitions
            )
            out.add(core.move_person(old, new_here, merged_ms, alias=here))
            journeys_metrics.JOURNEY_HANDOFFS.labels("local").inc()
            return
        snapshot = core.export_person(old)
        core.drop_person(old)
        if snapshot is not None:
            moved.person(forward[0], old, snapshot, relay=True, merged_ms=merged_ms)
            journeys_metrics.JOURNEY_HANDOFFS.labels("out").inc()

    def _merge(
        self,
        part: PartitionJourneys,
        partition: int,
        old: str,
        new: str,
        merged_ms: int | None,
        *,
        out: Outputs,
        moved: Outbox,
    ) -> None:
        core = part.core
        if partition_for(new.encode(), self.partitions) == partition:
            out.add(core.move_person(old, new, merged_ms))
            journeys_metrics.JOURNEY_HANDOFFS.labels("local").inc()
            return
        snapshot = core.export_person(old)
        core.drop_person(old)
        # Forward for the late tolerance past the later of this partition's time and the
        # merge's: the old person's events may still be unread here while the time is
        # unknown or far behind (after a restart `identity-merges` is read well ahead of the
        # `stitched` backlog), and a forward counted from there ended when time first moved.
        since = core.watermark_ms if merged_ms is None else max(core.watermark_ms, merged_ms)
        part.handoffs.forward_to(old, new, since + self.core_settings.late_tolerance_ms)
        # Sent even without state: the receiving partition holds its time until it hears.
        moved.person(new, old, snapshot, merged_ms=merged_ms)
        journeys_metrics.JOURNEY_HANDOFFS.labels("out").inc()

    # -- outputs --------------------------------------------------------------------------

    def _send(self, out: Outputs, partition: int, watermark_ms: int | None) -> None:
        """One envelope per output topic with rows, each with the partition's watermark; when
        time moved, the drop-offs and transitions topics hear it even without rows, so their
        readers (the friction stage's stage series) can close windows."""
        sender = self.sender
        sent = set()
        for topic, rows in out.by_topic(self.names):
            sender.produce_rows(topic, rows, watermark_ms, partition)
            sent.add(topic)
        if out.moved:
            for topic in (self.topics.journey_dropoffs, self.topics.journey_transitions):
                if topic not in sent:
                    sender.produce_rows(topic, [], watermark_ms, partition)
        if out.journeys:
            journeys_metrics.JOURNEY_RECORDS.labels("journeys").inc(len(out.journeys))
        if out.superseded:
            journeys_metrics.JOURNEY_RECORDS.labels("superseded").inc(out.superseded)
        if out.dropoffs:
            journeys_metrics.JOURNEY_RECORDS.labels("dropoffs").inc(len(out.dropoffs))
        if out.retractions:
            journeys_metrics.JOURNEY_RECORDS.labels("retractions").inc(len(out.retractions))
        if out.rejected:
            metrics.REJECTED.labels(STAGE, "too_late").inc(out.rejected)

    def _send_moved(self, moved: Outbox) -> None:
        for target, rows in sorted(moved.rows.items()):
            self.sender.produce_rows(self.topics.journey_handoff, rows, None, target)

    def announce(self) -> bool:
        """Tell every partition how far ours have read, after the events they forwarded
        (same producer, so the same order): a partition's time waits for every other's, or
        it could move past events still stamped with a merged person's old id that a slower
        partition has yet to read and forward. Called on a timer: one marker per partition
        a few times a second, however many messages pass."""
        reads = []
        for partition, part in list(self._parts.items()):
            read = part.time_read()
            if read is None or self.persons.partitions.get(partition) is not part.state:
                continue
            if read > self._told.get(partition, read - 1):
                reads.append([partition, read])
                self._told[partition] = read
        if not reads:
            return False
        marker = orjson.dumps({"kind": "read", "reads": reads})
        for target in range(self.partitions):
            self.sender.produce_rows(self.topics.journey_handoff, [marker], None, target)
        return True

    def _decode(
        self, payload: bytes | None, partition: int, offset: int, topic: str
    ) -> envelope.Decoded | None:
        try:
            return envelope.decode(payload or b"")
        except envelope.EnvelopeError as exc:
            # Only Journeys stages write these topics: anything else is kept, with why.
            self.dead_letters.message(payload, exc, Where(topic, partition, offset))
            return None

    def census(self) -> Census:
        """The cores' census summed over this worker's partitions."""
        counts = [part.core.census() for part in self._parts.values()]
        return (
            Census(*(sum(column) for column in zip(*counts, strict=True)))
            if counts
            else Census(0, 0, 0, 0)
        )

    def held_still(self) -> tuple[int, int]:
        """Partitions awaiting merged persons' state (their time stops short of the earliest
        such merge), and how many such persons they await."""
        awaiting = [len(part.handoffs.awaiting) for part in self._parts.values()]
        return sum(1 for n in awaiting if n), sum(awaiting)


def _ahead(merged_ms: int | None, part: PartitionJourneys) -> TypeGuard[int]:
    """Whether a merge lies ahead of the partition's time (it then waits to be applied)."""
    return merged_ms is not None and merged_ms > part.core.watermark_ms


def _ms(delta: Any) -> int:
    return int(delta.total_seconds() * 1000)


def build(settings: Settings) -> tuple[Any, StageRuntime]:
    """The faust app of the journeys stage, ready for a worker."""
    topics = Topics.from_settings(settings.topics)
    definitions = load_definitions(settings.journeys.definitions)
    runtime, persons = stage_runtime(
        settings, STAGE, topics.stitched, "persons", fetch_bytes=_FETCH_BYTES
    )
    merges = runtime.add_table(settings, STAGE, "merges", topics.identity_merges)
    handoff = runtime.add_table(settings, STAGE, "handoff", topics.journey_handoff)
    app = runtime.app
    stage = JourneyStage(settings, topics, runtime.sender, persons, merges, handoff, definitions)

    flow = PartitionFlow(app)

    def hold_back(partition: int, paused: bool) -> None:
        flow.hold(topics.stitched, partition, paused)

    stage.hold_back = hold_back
    log.info(
        "journey definitions loaded",
        extra={"definitions": [f"{d.id} v{d.version}" for d in definitions]},
    )

    privacy = SuppressionWatch.start(settings)
    runtime.closers.append(privacy.stop)
    # Each handler first drops erased persons from its partition (stream_processors/privacy).
    agent = forgetting_journeys(runtime.partition_agent, privacy, stage)
    agent(topics.stitched, "journeys", (persons,), stage.handle_stitched)
    agent(topics.identity_merges, "merges", (persons, merges), stage.handle_merges)
    agent(topics.journey_handoff, "handoff", (persons, handoff), stage.handle_handoff)

    @app.timer(interval=30.0)  # type: ignore[untyped-decorator]
    async def gauges() -> None:
        census = stage.census()
        journeys_metrics.JOURNEYS_OPEN.set(census.open_journeys)
        journeys_metrics.JOURNEYS_PERSONS.set(census.persons)
        journeys_metrics.JOURNEYS_BUFFERED.set(census.buffered_events)
        journeys_metrics.JOURNEYS_FROZEN.set(census.frozen_persons)
        held, awaited = stage.held_still()
        journeys_metrics.JOURNEYS_PARTITIONS_AWAITING.set(held)
        journeys_metrics.JOURNEYS_HANDOFFS_AWAITED.set(awaited)
        journeys_metrics.JOURNEYS_PARTITIONS_PAUSED.set(stage.held_back())

    @app.timer(interval=0.2)  # type: ignore[untyped-decorator]
    async def announce() -> None:
        if stage.announce():
            runtime.sender.poll()

    return app, runtime
