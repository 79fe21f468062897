"""The identity stage: `touchpoints` -> person ids -> `stitched` (keyed by person), with the one
identity authority behind it (docs/stages/identity.md).

Two agents in one faust app, so one worker process runs both and any number of workers share
the work:
- `route` (partitioned like `touchpoints`): stamps each event with the person of its anchor
  identifier from the replicated map, forwards it to that person's partition of `stitched`,
  and sends the events with several (or junk) identifiers to `identity-links`;
- `resolve` (the one partition of `identity-links`, so one worker of the group at a time):
  decides the links with the identity graph, persists them, and publishes map updates to
  `identity-map`, every merge, move and refusal to `identity-audit`, and merges and moves to
  `identity-merges` on the partitions of the persons they take identifiers from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import orjson

from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.core.event_shape import link_problems, split, touchpoint_problems
from stream_processors.core.watermarks import SourceWatermarks
from stream_processors.identity import metrics as identity_metrics
from stream_processors.identity.core.authority import (
    Authority,
    link_from,
    link_key,
    link_record,
    record_row,
)
from stream_processors.identity.core.records import Resolution
from stream_processors.identity.core.routing import Router
from stream_processors.identity.map_replica import MapReplica, map_row
from stream_processors.privacy.forget import SuppressionWatch, forget_links
from stream_processors.runtime import metrics
from stream_processors.runtime.app import StageRuntime, stage_runtime
from stream_processors.runtime.dead_letters import StageDeadLetters, Where
from stream_processors.runtime.sender import TransactionalSender
from stream_processors.runtime.state import ChangelogTable, PartitionState

log = logging.getLogger(__name__)

STAGE = "identity"
AUTHORITY = 0  # the one partition of `identity-links`
FRONTIER_KEY = "\x00frontier"  # in the links table: the sources' watermarks the authority heard
_LINK_FIELDS = ("event_id", "occurred_at", "channel", "source", "identity", "person_id")
_VERSION_STRIDE = 1_000_000  # records per input message, at most, in a version number
_MERGES = {rule: identity_metrics.IDENTITY_MERGES.labels(rule) for rule in ("link", "correction")}
_REFUSALS = {
    rule: identity_metrics.IDENTITY_REFUSALS.labels(rule)
    for rule in ("denylist", "customer_id_conflict", "cap")
}


@dataclass
class Routing:
    """The partitioned half: one input message of `touchpoints` -> `stitched` + links."""

    topics: Topics
    partitions: int
    sender: TransactionalSender
    routed: ChangelogTable
    router: Router

    @cached_property
    def dead_letters(self) -> StageDeadLetters:
        return StageDeadLetters(STAGE, self.topics.dlq_identity, self.sender)

    def handle(self, payload: bytes | None, partition: int, offset: int) -> None:
        if offset <= self.routed.applied_offset(partition):
            metrics.REDELIVERED.labels(STAGE).inc()
            return
        where = Where(self.topics.touchpoints, partition, offset)
        try:
            decoded = envelope.decode(payload or b"")
        except envelope.EnvelopeError as exc:
            # Only the ingest stage writes `touchpoints`: anything else is kept, with why.
            self.dead_letters.message(payload, exc, where)
            self.routed.mark_applied(partition, offset, None)
            return
        # The stage validates what it forwards: the journeys and friction stages index these
        # fields without asking.
        events, bad = split(decoded.events, touchpoint_problems)
        if bad:
            self.dead_letters.events(bad, where)
        out, sent = self.router.stamp(events, partition)
        links = _fragments([{k: event.get(k) for k in _LINK_FIELDS} for event in sent])
        metrics.EVENTS_IN.labels(STAGE).inc(len(decoded.events))
        previous = self.routed.applied[partition].watermark_ms
        watermark = decoded.watermark_ms
        if watermark is None or (previous is not None and watermark < previous):
            watermark = previous
        send, stitched = self.sender.produce_rows, self.topics.stitched
        # Every partition of `stitched` hears this partition's watermark when it moves, so a
        # reader's minimum over its sources keeps advancing (docs/concepts.md §5).
        moved = watermark != previous
        for target in range(self.partitions) if moved else sorted(out):
            send(stitched, _fragments(out.get(target, [])), watermark, target, partition)
        if links or moved:
            # The authority hears this partition's time too, so it can tell the journeys
            # stage up to when it has decided every link (docs/stages/journeys.md).
            send(self.topics.identity_links, links, watermark, 0, partition)
            identity_metrics.PROVISIONAL.inc(len(sent))
        metrics.EVENTS_OUT.labels(STAGE).inc(len(events))
        self.routed.mark_applied(partition, offset, watermark)


@dataclass
class Resolving:
    """The authority: one input message of `identity-links` -> map, audit and merges."""

    settings: Settings
    topics: Topics
    sender: TransactionalSender
    links: ChangelogTable
    partition_of: Callable[[str], int]  # a person's partition: `Router.partition`
    _authority: Authority | None = None
    _state: PartitionState | None = None
    _frontier: SourceWatermarks | None = None
    _announced: int | None = None  # the frontier last sent to `identity-merges`

    @cached_property
    def dead_letters(self) -> StageDeadLetters:
        return StageDeadLetters(STAGE, self.topics.dlq_identity, self.sender)

    def authority(self) -> Authority:
        """The authority for the current state; rebuilt from the persisted links after a
        restore (the graph is a function of its links)."""
        state = self.links[AUTHORITY]
        if self._authority is None or self._state is not state:
            started = time.perf_counter()
            rules = self.settings.identity
            frontier = state.data.get(FRONTIER_KEY, ())
            self._frontier = SourceWatermarks.restore(self.settings.topics.partitions, frontier)
            self._announced = self._frontier.low
            links = [
                link_from(key, value, rules) for key, value in state.items() if key != FRONTIER_KEY
            ]
            self._authority = Authority.rebuild(rules, links)
            self._state = state
            log.info(
                "identity graph rebuilt",
                extra={"links": len(links), "seconds": round(time.perf_counter() - started, 3)},
            )
        return self._authority

    def handle(self, payload: bytes | None, offset: int, now_ms: int) -> None:
        if offset <= self.links.applied_offset(AUTHORITY):
            metrics.REDELIVERED.labels(STAGE).inc()
            return
        authority = self.authority()
        state = self.links[AUTHORITY]
        where = Where(self.topics.identity_links, AUTHORITY, offset)
        try:
            decoded = envelope.decode(payload or b"")
        except envelope.EnvelopeError as exc:
            self.dead_letters.message(payload, exc, where)
            self.links.mark_applied(AUTHORITY, offset, None)
            return
        events, bad = split(decoded.events, link_problems)
        if bad:
            self.dead_letters.events(bad, where)
        audit: list[bytes] = []
        merges: dict[int, list[bytes]] = {}
        tally: dict[Any, int] = {}  # records per counter: each counter moves once per message
        seq = offset * _VERSION_STRIDE
        produce, map_topic = self.sender.produce, self.topics.identity_map
        decide, parse = authority.decide, datetime.fromisoformat
        for event in events:
            decision = decide(event["identity"], parse(event["occurred_at"]), event["event_id"])
            for link in decision.links:
                state[link_key(link)] = link_record(link)
            for update in decision.updates:
                seq += 1
                key = update.key
                row = map_row(key, update.person_id, update.remapped, seq, now_ms)
                produce(map_topic, row, key.encode(), 0)
            resolution = decision.resolution
            if resolution.merges or resolution.moves or resolution.refusals:
                seq = self._records(resolution, seq, audit, merges, tally)
        send = self.sender.produce_rows
        if audit:
            send(self.topics.identity_audit, audit, None, 0)
        for target, rows in sorted(merges.items()):
            send(self.topics.identity_merges, rows, None, target)
        if decoded.watermark_ms is not None and decoded.source is not None:
            assert self._frontier is not None  # made with the authority
            before = self._frontier.low
            if self._frontier.hear(decoded.source, decoded.watermark_ms) != before:
                state[FRONTIER_KEY] = self._frontier.snapshot()
        self.links.mark_applied(AUTHORITY, offset, None)
        for counter, n in tally.items():
            counter.inc(n)
        graph = authority.graph
        identity_metrics.IDENTITY_IDENTIFIERS.set(graph.size())
        identity_metrics.IDENTITY_LINKS.set(len(state))
        identity_metrics.IDENTITY_REMAPPED.set(len(authority.remapped))

    def announce(self, partitions: int) -> bool:
        """Tell every `identity-merges` partition the time up to which all links are decided
        (the minimum over the `touchpoints` partitions of the watermarks that came with
        them): the journeys stage does not move past it, so a merge reaches it before the
        deadlines it may change. Called on a timer, so the stream carries a few markers per
        second however many messages pass."""
        low = self._frontier.low if self._frontier is not None else None
        if low is None or low == self._announced:
            return False
        for target in range(partitions):
            self.sender.produce_rows(self.topics.identity_merges, [], low, target)
        self._announced = low
        return True

    def _records(
        self,
        resolution: Resolution,
        seq: int,
        audit: list[bytes],
        merges: dict[int, list[bytes]],
        tally: dict[Any, int],
    ) -> int:
        partition_of = self.partition_of
        for merge in resolution.merges:
            seq += 1
            row = orjson.dumps(record_row(merge, seq, None))
            audit.append(row)
            # To each partition losing a person, and to the one gaining them if another
            # partition loses one: it waits for their state before moving time on.
            home = partition_of(merge.person_id)
            olds = merge.old_person_ids
            targets: Collection[int]
            if len(olds) == 1:  # the usual merge: one person joins another
                lost = partition_of(olds[0]) if olds[0] != merge.person_id else None
                targets = () if lost is None else (home,) if lost == home else (lost, home)
            else:
                targets = {partition_of(o) for o in olds if o != merge.person_id}
                if targets - {home}:
                    targets.add(home)
            for target in targets:
                rows = merges.get(target)
                if rows is None:
                    merges[target] = [row]
                else:
                    rows.append(row)
            counter = _MERGES[merge.rule]
            tally[counter] = tally.get(counter, 0) + 1
        for move in resolution.moves:
            seq += 1
            row = orjson.dumps(record_row(move, seq, None))
            audit.append(row)
            merges.setdefault(partition_of(move.from_person_id), []).append(row)
            tally[identity_metrics.IDENTITY_MOVES] = (
                tally.get(identity_metrics.IDENTITY_MOVES, 0) + 1
            )
        for refusal in resolution.refusals:
            seq += 1
            audit.append(orjson.dumps(record_row(refusal, seq, resolution.person_id)))
            counter = _REFUSALS[refusal.rule]
            tally[counter] = tally.get(counter, 0) + 1
        return seq


def _fragments(events: list[dict[str, Any]]) -> list[bytes]:
    """Events as the fragments of an envelope: one `orjson.dumps` of the whole list (its
    events, comma-separated, are the bytes of one fragment per event joined), not one call
    per event."""
    return [orjson.dumps(events)[1:-1]] if events else []


def build(settings: Settings) -> tuple[Any, StageRuntime]:
    """The faust app of the identity stage, ready for a worker."""
    topics = Topics.from_settings(settings.topics)
    runtime, routed = stage_runtime(settings, STAGE, topics.touchpoints, "routed")
    links = runtime.add_table(settings, STAGE, "links", topics.identity_links)
    app, sender = runtime.app, runtime.sender
    replica = MapReplica(settings.kafka, topics.identity_map).start()
    runtime.closers.append(replica.stop)
    privacy = SuppressionWatch.start(settings)  # erased persons leave the graph
    runtime.closers.append(privacy.stop)
    router = Router(settings.identity, replica.data, settings.topics.partitions)
    routing = Routing(topics, settings.topics.partitions, sender, routed, router)
    resolving = Resolving(settings, topics, sender, links, router.partition)

    @app.agent(app.topic(topics.touchpoints, value_type=bytes, key_type=bytes), name="route")
    async def route(stream: Any) -> None:
        # Route with the whole map known so far: fewer provisional ids to correct later.
        await asyncio.to_thread(replica.wait_caught_up)
        async for event in stream.events():
            if replica.error is not None:
                raise RuntimeError("identity map replica failed") from replica.error
            msg = event.message
            await routed.ready(msg.partition)
            if msg.partition not in routed.partitions:
                continue
            routing.handle(msg.value, msg.partition, msg.offset)
            sender.poll()

    @app.agent(app.topic(topics.identity_links, value_type=bytes, key_type=bytes), name="resolve")
    async def resolve(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            await links.ready(msg.partition)
            if msg.partition not in links.partitions:
                continue
            state = links[AUTHORITY]
            if privacy.fresh(AUTHORITY, state) and forget_links(state, privacy.list, FRONTIER_KEY):
                resolving._authority = None  # rebuilt from the links that are left
            resolving.handle(msg.value, msg.offset, int(time.time() * 1000))
            sender.poll()

    @app.timer(interval=0.2)  # type: ignore[untyped-decorator]
    async def announce() -> None:
        if AUTHORITY in links.partitions and resolving.announce(settings.topics.partitions):
            sender.poll()

    return app, runtime
