"""The ingest stage: `raw` -> validate, deduplicate -> `touchpoints`, bad input -> `dlq.ingest`.

Each input message (a micro-batch or a bare event) becomes at most one output message on the
same partition number of `touchpoints`, so a person's events keep their order and one Kafka
message still carries many events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from producers.pii import PiiHasher
from schemas import envelope
from schemas.deadletter import DeadLetter
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.core.watermarks import idle_watermark, partition_watermark
from stream_processors.ingest.core.admission import Ingest, Rejection
from stream_processors.privacy.gate import IngestGate, KeyAliases, SuppressionReplica
from stream_processors.runtime import metrics
from stream_processors.runtime.app import StageRuntime, stage_runtime
from stream_processors.runtime.sender import TransactionalSender
from stream_processors.runtime.state import ChangelogTable

log = logging.getLogger(__name__)

STAGE = "ingest"


@dataclass
class IngestStage:
    """Turns one raw Kafka message into outputs, dead letters and a state change."""

    settings: Settings
    topics: Topics
    sender: TransactionalSender
    seen: ChangelogTable
    gate: IngestGate | None = None  # drops erased persons' events (stream_processors/privacy)
    _cores: dict[int, Ingest] = field(default_factory=dict)
    _last_input: dict[int, float] = field(default_factory=dict)  # monotonic seconds
    monotonic: Callable[[], float] = time.monotonic  # injected by tests
    # Contact details in the events' texts, from producers that did not hash them, are hashed
    # before anything is forwarded or dead-lettered (producers/contact_details.py).
    pii: PiiHasher = field(init=False)

    def __post_init__(self) -> None:
        self.pii = PiiHasher(self.settings.pii)

    def core(self, partition: int) -> Ingest:
        core = self._cores.get(partition)
        if core is None or core.seen is not self.seen[partition]:
            proc = self.settings.processor
            core = Ingest(
                self.seen[partition],
                proc.dedup_horizon,
                proc.future_tolerance,
                proc.late_channels,
                proc.max_event_age,
            )
            self._cores[partition] = core
        return core

    def handle(self, payload: bytes | None, partition: int, offset: int, now: datetime) -> None:
        """Process one message unless its effect is already in the state."""
        self._last_input[partition] = self.monotonic()
        if offset <= self.seen.applied_offset(partition):
            metrics.REDELIVERED.labels(STAGE).inc()
            return
        try:
            decoded = envelope.decode(payload or b"")
        except envelope.EnvelopeError as exc:
            rejection = Rejection(exc.reason, self._scrubbed(payload or b""), detail=exc.detail)
            self._dead_letter(rejection, partition, offset, now)
            self.seen.mark_applied(partition, offset, None)
            return
        metrics.EVENTS_IN.labels(STAGE).inc(len(decoded.events))
        events = decoded.events
        if self.gate is not None:
            events = self.gate.admit(events, partition, offset, now)
        events = [self.pii.document(event) for event in events]
        result = self.core(partition).process(events, now)
        previous = self.seen.applied[partition].watermark_ms
        watermark = self._watermark(partition, result.max_occurred_ms, decoded.watermark_ms, now)
        # An envelope with no events is a watermark heartbeat: pass time on downstream.
        if result.fragments or watermark != previous:
            self.sender.produce_rows(
                self.topics.touchpoints, result.fragments, watermark, partition
            )
            metrics.EVENTS_OUT.labels(STAGE).inc(len(result.fragments))
        for rejection in result.rejected:
            self._dead_letter(rejection, partition, offset, now)
        if result.duplicates:
            metrics.DUPLICATES.labels(STAGE).inc(result.duplicates)
        self.seen.mark_applied(partition, offset, watermark)

    def heartbeat_idle(self, now: datetime, idle_after: float) -> list[int]:
        """Live mode: every owned partition without input for `idle_after` seconds whose event
        time is near the wall clock (`idle_watermark`) moves its watermark to the clock minus
        the allowed lateness and says so downstream, so deadlines still fire in quiet hours.
        Returns the partitions that moved."""
        mono = self.monotonic()
        lateness_ms = int(self.settings.processor.allowed_lateness.total_seconds() * 1000)
        now_ms = int(now.timestamp() * 1000)
        moved = []
        for partition in sorted(self.seen.partitions):
            last = self._last_input.setdefault(partition, mono)
            applied = self.seen.applied[partition]
            target = idle_watermark(
                applied.watermark_ms,
                now_ms,
                lateness_ms=lateness_ms,
                idle_ms=int(idle_after * 1000),
            )
            if mono - last < idle_after or target is None:
                continue
            self.sender.produce_rows(self.topics.touchpoints, [], target, partition)
            self.seen.mark_applied(partition, applied.offset, target)
            moved.append(partition)
        return moved

    def expire(self, now: datetime) -> int:
        """Forget ids older than the dedup horizon, partition by partition."""
        removed = 0
        for partition in list(self.seen.partitions):
            removed += self.core(partition).expire(now)
        metrics.STATE_KEYS.labels(STAGE).set(sum(len(s) for s in self.seen.partitions.values()))
        return removed

    def _watermark(
        self, partition: int, newest_ms: int | None, declared_ms: int | None, now: datetime
    ) -> int | None:
        proc = self.settings.processor
        return partition_watermark(
            self.seen.applied[partition].watermark_ms,
            newest_ms,
            declared_ms,
            lateness_ms=int(proc.allowed_lateness.total_seconds() * 1000),
            ceiling_ms=int((now + proc.future_tolerance).timestamp() * 1000),
        )

    def _scrubbed(self, payload: bytes) -> bytes:
        """A payload that is not an envelope, with any contact detail in its text hashed."""
        text = payload.decode("utf-8", "replace")
        scrubbed = self.pii.text(text)
        return payload if scrubbed == text else scrubbed.encode()

    def _dead_letter(self, rej: Rejection, partition: int, offset: int, now: datetime) -> None:
        raw, encoding = DeadLetter.wrap_raw(rej.raw)
        record = DeadLetter(
            stage=STAGE,
            reason=rej.reason,
            errors=list(rej.errors),
            detail=rej.detail,
            raw=raw,
            raw_encoding=encoding,
            source_topic=self.topics.raw,
            source_partition=partition,
            source_offset=offset,
            event_id=rej.event_id,
            rejected_at=now,
        )
        self.sender.produce(
            self.topics.dlq_ingest, record.model_dump_json().encode(), None, partition
        )
        metrics.REJECTED.labels(STAGE, rej.reason).inc()


def build(settings: Settings) -> tuple[Any, StageRuntime]:
    """The faust app of the ingest stage, ready for a worker."""
    topics = Topics.from_settings(settings.topics)
    runtime, seen = stage_runtime(settings, STAGE, topics.raw, "seen")
    app, sender = runtime.app, runtime.sender
    privacy, aliases = SuppressionReplica(settings).start(), KeyAliases(settings).start()
    runtime.closers += [privacy.stop, aliases.stop]
    stage = IngestStage(settings, topics, sender, seen, IngestGate(privacy, aliases, sender))
    source = app.topic(topics.raw, value_type=bytes, key_type=bytes)

    @app.agent(source, name=STAGE)
    async def ingest(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            await seen.ready(msg.partition)
            if not (privacy.caught_up.is_set() and aliases.caught_up.is_set()):
                # Erased stays erased, and rotated keys match, from the first event on.
                await asyncio.to_thread(privacy.caught_up.wait)
                await asyncio.to_thread(aliases.caught_up.wait)
            if msg.partition not in seen.partitions:
                continue
            stage.handle(msg.value, msg.partition, msg.offset, datetime.now(UTC))
            sender.poll()

    @app.timer(interval=60.0)  # type: ignore[untyped-decorator]
    async def expire_seen() -> None:
        stage.expire(datetime.now(UTC))

    idle_after = settings.processor.idle_after_seconds
    if idle_after > 0:

        @app.timer(interval=max(1.0, idle_after / 4))  # type: ignore[untyped-decorator]
        async def heartbeat_idle() -> None:
            moved = stage.heartbeat_idle(datetime.now(UTC), idle_after)
            if moved:
                log.debug("idle partitions moved their watermark", extra={"partitions": moved})
                sender.poll()

    return app, runtime
