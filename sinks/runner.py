"""The ClickHouse sink process: consume topics, insert batches, then commit their offsets.

Per batch: (1) commit the batch's first offset with its planned end as metadata, (2) insert
the rows with the batch's token, (3) commit the offset after the batch. A crash between (2)
and (3) re-sends the identical batch, which ClickHouse drops. Every partition with a batch
due takes each step together: one commit of all their intents, their inserts, one commit of
all their offsets.

Weather never stops it. A failure that ClickHouse or Kafka gets over (`sinks/core/failures.py`)
pauses that partition and retries the step with capped backoff, while the loop goes on
polling Kafka (paused partitions deliver nothing), so the consumer stays in its group
however long the outage lasts. A batch ClickHouse refuses is split (`sinks/core/pieces.py`);
what cannot be split further goes to the dead-letter topic; the offsets move past a batch
only once every piece is inserted or dead-lettered.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter, Gauge, Histogram

from schemas.envelope import EnvelopeError
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.batching import Batch, PartitionBatcher, parse_intent, rows_of
from sinks.clickhouse import insert_json_rows
from sinks.core.failures import Backoff, Failure, clickhouse_failure, kafka_retriable
from sinks.core.pieces import Piece, body, is_single_message, piece_rows, row_fragments, split
from sinks.dead_letters import DeadLetterNotSentError, DeadLetterSender, RefusedRows, dead_letter
from sinks.privacy import SinkSuppression

log = logging.getLogger(__name__)

ROWS = Counter("journeys_sink_rows_total", "Rows inserted into ClickHouse", ["table"])
BATCHES = Counter("journeys_sink_batches_total", "Batches inserted into ClickHouse", ["table"])
INSERT_SECONDS = Histogram("journeys_sink_insert_seconds", "Time per ClickHouse insert", ["table"])
RETRIES = Counter(
    "journeys_sink_retries_total",
    "Failed attempts the sink waits out and retries (kind: unreachable, timeout, setup, "
    "code_N, kafka_commit, dead_letter, ...)",
    ["table", "kind"],
)
WAITING = Gauge("journeys_sink_waiting_partitions", "Partitions paused until a failure passes")
SPLITS = Counter("journeys_sink_splits_total", "Refused pieces split in two", ["table", "kind"])
DEAD_LETTERS = Counter(
    "journeys_sink_dead_letters_total", "Refused pieces sent to the dead-letter topic", ["table"]
)
DEAD_LETTER_ROWS = Counter(
    "journeys_sink_dead_letter_rows_total", "Rows sent to the dead-letter topic", ["table"]
)

EXIT_FAULT_INJECTED = 86
BACKOFF = Backoff(first=0.5, cap=30.0)
LOG_EVERY_SECONDS = 15.0  # a failure that lasts is logged this often, not at every attempt
STOP_GRACE_SECONDS = 15.0  # on stop, how long pending batches may still wait for ClickHouse
ASSIGN_PATIENCE_SECONDS = 120.0  # reading committed offsets when partitions are assigned


def pipeline_routes(topics: Topics) -> dict[str, str]:
    """Which topic the sink writes into which table."""
    return {
        topics.stitched: "touchpoints",
        topics.identity_links: "identity_links",
        topics.identity_map: "identity_overrides",
        topics.identity_audit: "identity_audit",
        topics.journey_updates: "journeys",
        topics.journey_transitions: "journey_transitions",
        topics.journey_dropoffs: "dropoffs",
        topics.journey_retractions: "journey_retractions",
        topics.journey_sessions: "sessions",
        topics.friction_windows: "friction_windows",
        topics.alerts: "alerts",
        topics.alert_silences: "alert_silences",
    }


@dataclass
class SinkStats:
    batches: int = 0
    rows: int = 0
    messages: int = 0
    dead_letters: int = 0  # pieces
    dead_letter_rows: int = 0
    retries: int = 0


class _WaitError(Exception):
    """A step that will succeed later: the partition waits, then tries it again."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.text)
        self.failure = failure


class _RefusedError(Exception):
    """ClickHouse refused the rows themselves."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.text)
        self.failure = failure


@dataclass
class _Work:
    """One closed batch on its way into ClickHouse: the pieces still to place, front first."""

    batch: Batch
    token: str
    pieces: deque[Piece]
    intent_committed: bool = False
    inserted: bool = False  # every piece placed (the fault injection counts it once)
    rows_written: int = 0
    _rows: dict[int, list[bytes] | None] = field(default_factory=dict)

    def message_rows(self, index: int) -> list[bytes] | None:
        """Message `index`'s rows told apart (cached: a message splits level by level)."""
        if index not in self._rows:
            self._rows[index] = row_fragments(self.batch.parts[index])
        return self._rows[index]


@dataclass
class _Partition:
    topic: str
    partition: int
    topic_id: str
    batcher: PartitionBatcher
    queue: deque[_Work] = field(default_factory=deque)
    failures: int = 0  # transient failures in a row
    failing_since: float = 0.0
    retry_at: float = 0.0
    paused: bool = False


@dataclass
class TopicSink:
    """Writes topics into ClickHouse tables (`routes`: topic -> table) with one consumer."""

    settings: Settings
    client: Client
    routes: dict[str, str]
    stats: SinkStats = field(default_factory=SinkStats)
    max_bytes: int = 32 * 1024 * 1024
    _parts: dict[tuple[str, int], _Partition] = field(default_factory=dict)
    _consumer: Consumer | None = None
    _admin: AdminClient | None = None
    _dead_letters: DeadLetterSender | None = None
    _logged_at: dict[tuple[str, str], float] = field(default_factory=dict)
    _privacy: SinkSuppression = field(init=False)

    def __post_init__(self) -> None:
        self._privacy = SinkSuppression(self.settings)  # erased persons' rows stay out

    def _open(self) -> Consumer:
        consumer = Consumer(
            {
                **self.settings.kafka.as_librdkafka_dict(),
                "group.id": self.settings.sink.group_id or self.settings.topics.group("sink"),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": 10_000,
                # One insert attempt is the longest the loop goes without polling; this
                # leaves room for a slow one (clickhouse-connect waits up to 300 s).
                "max.poll.interval.ms": 600_000,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
            }
        )
        consumer.subscribe(
            sorted(self.routes), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        return consumer

    # -- assignment -----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing may be cut before the recorded intents are known, so this waits for them
        # (a coordinator that is moving answers within seconds).
        committed = self._patiently("committed offsets", lambda: consumer.committed(partitions, 30))
        ids = self._patiently("topic ids", lambda: self._topic_ids({tp.topic for tp in partitions}))
        for tp in committed:
            batcher = PartitionBatcher(
                tp.partition, self.max_bytes, self.settings.sink.max_seconds, ids[tp.topic]
            )
            batcher.plan(parse_intent(tp.metadata))
            key = (tp.topic, tp.partition)
            self._parts[key] = _Partition(tp.topic, tp.partition, ids[tp.topic], batcher)
        assigned = [f"{tp.topic}[{tp.partition}]" for tp in partitions]
        log.info("sink assigned", extra={"partitions": assigned})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Uncommitted rows are simply re-read by the next owner, which rebuilds a batch in
        # progress from its recorded intent, with the same pieces and tokens.
        for tp in partitions:
            part = self._parts.pop((tp.topic, tp.partition), None)
            if part is not None and part.paused:
                consumer.resume([TopicPartition(tp.topic, tp.partition)])
        self._count_waiting()

    def _topic_ids(self, topics: set[str]) -> dict[str, str]:
        """Kafka's id of each topic: a topic recreated under the same name gets a new one."""
        if self._admin is None:
            self._admin = AdminClient({**self.settings.kafka.as_librdkafka_dict(), "log_level": 3})
        futures = self._admin.describe_topics(TopicCollection(sorted(topics)), request_timeout=15)
        return {name: str(f.result().topic_id) for name, f in futures.items()}

    def _patiently(self, what: str, call: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + ASSIGN_PATIENCE_SECONDS
        failures = 0
        while True:
            try:
                return call()
            except KafkaException as exc:
                error = exc.args[0]
                failures += 1
                retriable = kafka_retriable(error.code(), error.retriable())
                if not retriable or time.monotonic() > deadline:
                    raise
                log.warning("reading %s failed (%s); retrying", what, error.str())
                time.sleep(BACKOFF.delay(failures))

    # -- the loop -------------------------------------------------------------------------

    def run(
        self, should_stop: Callable[[], bool], idle_exit_seconds: float | None = None
    ) -> SinkStats:
        """Consume until `should_stop()` (or idle this long); write what is pending first."""
        consumer = self._consumer = self._open()
        last_data = time.monotonic()
        try:
            while not should_stop():
                msgs = consumer.consume(5_000, 0.2)
                now = time.monotonic()
                if msgs:
                    last_data = now
                for msg in msgs:
                    self._take(msg, now)
                caught_up = self._caught_up()
                for key, part in self._parts.items():
                    batch = part.batcher.due(now, key in caught_up)
                    if batch is not None:
                        self._enqueue(part, batch)
                self._advance()
                if not self._parts or any(p.queue for p in self._parts.values()):
                    last_data = now  # idle only while partitions are assigned and all written
                elif idle_exit_seconds is not None and now - last_data > idle_exit_seconds:
                    break
            self._finish_pending()
        finally:
            consumer.close()
            self._consumer = None
            self._parts.clear()
            WAITING.set(0)
            if self._dead_letters is not None:
                self._dead_letters.close()
        return self.stats

    def _caught_up(self) -> set[tuple[str, int]]:
        """The partitions with a batch open whose reading position has reached the end the
        last fetch saw (the client's own figures; nothing is asked of the broker). An open
        transaction upstream keeps that end ahead, so its partitions wait their age out."""
        if not self.settings.sink.flush_when_caught_up:
            return set()
        consumer = self._consumer_now()
        waiting = [
            TopicPartition(p.topic, p.partition) for p in self._parts.values() if p.batcher.open
        ]
        if not waiting:
            return set()
        done = set()
        for tp in consumer.position(waiting):
            _, end = consumer.get_watermark_offsets(tp, cached=True)
            if 0 <= end <= tp.offset:
                done.add((tp.topic, tp.partition))
        return done

    def _take(self, msg: Any, now: float) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            if err.fatal():
                raise KafkaException(err)
            # A broker restarting, a connection reset: librdkafka reconnects by itself.
            self._log_now_and_then("kafka", err.name(), "kafka: %s", err.str())
            return
        part = self._parts.get((msg.topic(), msg.partition()))
        if part is None:
            return
        self.stats.messages += 1
        for batch in part.batcher.add(msg.offset(), _rows(msg.value()), now):
            self._enqueue(part, batch)

    def _enqueue(self, part: _Partition, batch: Batch) -> None:
        token = batch.token(part.topic)
        part.queue.append(_Work(batch, token, deque([Piece.whole(len(batch.parts))])))

    def _finish_pending(self) -> None:
        """On stop: write the open batches, waiting out failures for a little while; what is
        still unwritten stays uncommitted, for the next sink."""
        for part in self._parts.values():
            batch = part.batcher.due(float("inf"))
            if batch is not None:
                self._enqueue(part, batch)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while True:
            self._advance()
            waiting = [p for p in self._parts.values() if p.queue]
            now = time.monotonic()
            if not waiting or now >= deadline:
                break
            time.sleep(max(0.0, min(*(p.retry_at for p in waiting), deadline) - now))
        if waiting:
            log.warning(
                "stopping with %d batches unwritten; the next sink writes them",
                sum(len(p.queue) for p in waiting),
            )

    # -- the partitions' work ----------------------------------------------------------------

    def _advance(self) -> None:
        """Take every partition's queued batches as far as they go now. A partition's batch
        goes intent, insert, offset past it, in that order; the partitions' commits go
        together, one for the intents before the inserts and one for the offsets after: each
        commit is a round trip to the group coordinator, and one per batch held a flush of a
        dozen partitions of half a dozen topics to that many round trips."""
        while True:
            now = time.monotonic()
            ready = [p for p in self._parts.values() if p.queue and now >= p.retry_at]
            if not ready:
                break
            intents = [p for p in ready if not p.queue[0].intent_committed]
            for part in self._commit_together(intents, lambda b: (b.first, b.intent())):
                part.queue[0].intent_committed = True
            inserted = []
            for part in ready:
                if not part.queue[0].intent_committed:
                    continue  # its intent waits
                try:
                    self._insert_batch(part, part.queue[0])
                except _WaitError as wait:
                    self._wait(part, wait.failure)
                    continue
                inserted.append(part)
            for part in self._commit_together(inserted, lambda b: (b.last + 1, "")):
                part.queue.popleft()
                self._recovered(part)
        for part in self._parts.values():
            if not part.queue and part.paused:
                self._consumer_now().resume([TopicPartition(part.topic, part.partition)])
                part.paused = False
                self._count_waiting()

    def _insert_batch(self, part: _Partition, work: _Work) -> None:
        """Place the batch's pieces (its intent is committed); what is placed stays placed
        when a later piece waits."""
        while work.pieces:
            replacement = self._place(part, work, work.pieces[0])
            work.pieces.popleft()
            work.pieces.extendleft(reversed(replacement))
        if not work.inserted:
            work.inserted = True
            self.stats.batches += 1
            self.stats.rows += work.rows_written
            BATCHES.labels(self.routes[part.topic]).inc()
            limit = self.settings.faults.sink_exit_after_inserts
            if limit is not None and self.stats.batches >= limit:
                log.warning("fault injection: exiting between insert and offset commit")
                os._exit(EXIT_FAULT_INJECTED)

    def _place(self, part: _Partition, work: _Work, piece: Piece) -> list[Piece]:
        """Insert one piece; a refused one is replaced by its halves, or dead-lettered when
        it cannot be split. Returns the pieces that take its place."""
        message_rows = work.message_rows(piece.start) if piece.rows is not None else None
        fragments = piece_rows(piece, work.batch.parts, message_rows)
        if not fragments:
            return []
        table = self.routes[part.topic]
        token = piece.token(work.token, work.batch.offsets)
        try:
            work.rows_written += self._insert(table, body(fragments), token)
            return []
        except _RefusedError as refused:
            failure = refused.failure
        single = is_single_message(piece)
        rows = work.message_rows(piece.start) if single or piece.rows is not None else None
        halves = split(piece, None if rows is None else len(rows))
        if halves:
            SPLITS.labels(table, failure.kind).inc()
            log.info("%s refused %s (%s); splitting it in two", table, token, failure.text[:300])
            return halves
        count = 1 if piece.rows is not None else (len(rows) if rows is not None else None)
        self._dead_letter(part, work, piece, fragments, count=count, failure=failure)
        return []

    def _insert(self, table: str, rows_json: bytes, token: str) -> int:
        started = time.perf_counter()
        try:
            self._privacy.refresh(self.client, time.monotonic())
        except Exception as exc:
            # Reading the suppression list is part of writing: while ClickHouse is away it
            # is waited out like the insert, and the rows never go unfiltered.
            raise _WaitError(clickhouse_failure(exc)) from exc
        rows_json, dropped = self._privacy.filter(table, rows_json)
        if dropped and rows_json == b"[]":
            return 0  # every row was an erased person's
        try:
            rows = insert_json_rows(self.client, table, rows_json, token)
        except Exception as exc:
            failure = clickhouse_failure(exc)
            if failure.transient:
                raise _WaitError(failure) from exc
            raise _RefusedError(failure) from exc
        INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
        ROWS.labels(table).inc(rows)
        return rows

    def _dead_letter(
        self,
        part: _Partition,
        work: _Work,
        piece: Piece,
        fragments: list[bytes],
        *,
        count: int | None,
        failure: Failure,
    ) -> None:
        table = self.routes[part.topic]
        first, last = piece.offsets(work.batch.offsets)
        where = RefusedRows(
            table,
            part.topic,
            work.batch.topic_id,
            part.partition,
            first,
            last,
            piece.token(work.token, work.batch.offsets),
        )
        record = dead_letter(where, body(fragments), count, failure, datetime.now(UTC))
        if self._dead_letters is None:
            topic = Topics.from_settings(self.settings.topics).dlq_sink
            self._dead_letters = DeadLetterSender(self.settings.kafka, topic)
        try:
            self._dead_letters.send(record)
        except (DeadLetterNotSentError, KafkaException, BufferError) as exc:
            raise _WaitError(Failure(True, "dead_letter", None, str(exc))) from exc
        DEAD_LETTERS.labels(table).inc()
        DEAD_LETTER_ROWS.labels(table).inc(count or 0)
        self.stats.dead_letters += 1
        self.stats.dead_letter_rows += count or 0
        log.error(
            "%s refused %s rows of %s[%d] offsets %d-%d (%s): sent to %s as %s",
            table,
            "their" if count is None else count,
            part.topic,
            part.partition,
            first,
            last,
            failure.text[:500],
            self._dead_letters.topic,
            where.token,
        )

    def _commit_together(
        self, parts: list[_Partition], position: Callable[[Batch], tuple[int, str]]
    ) -> list[_Partition]:
        """Commit each partition's offset and metadata for its first queued batch in one
        call; the partitions committed. Those Kafka says to try again wait; any other
        failure is raised."""
        if not parts:
            return []
        offsets = []
        for part in parts:
            offset, metadata = position(part.queue[0].batch)
            offsets.append(TopicPartition(part.topic, part.partition, offset, metadata=metadata))
        try:
            done = self._consumer_now().commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            failure = _retriable_commit_failure(exc)
            for part in parts:
                self._wait(part, failure)
            return []
        refused = {(t.topic, t.partition): t.error for t in done or [] if t.error is not None}
        committed = []
        for part in parts:
            error = refused.get((part.topic, part.partition))
            if error is None:
                committed.append(part)
            else:
                self._wait(part, _retriable_commit_failure(KafkaException(error)))
        return committed

    def _wait(self, part: _Partition, failure: Failure) -> None:
        now = time.monotonic()
        if part.failures == 0:
            part.failing_since = now
        part.failures += 1
        part.retry_at = now + BACKOFF.delay(part.failures)
        table = self.routes[part.topic]
        RETRIES.labels(table, failure.kind).inc()
        self.stats.retries += 1
        if not part.paused:
            # Nothing more is fetched for it; what was delivered stays in its batcher, and
            # on resume fetching goes on after the last message delivered.
            self._consumer_now().pause([TopicPartition(part.topic, part.partition)])
            part.paused = True
            self._count_waiting()
        self._log_now_and_then(
            table,
            failure.kind,
            "%s: %s for %.0fs (%d attempts), retrying in %.1fs: %s",
            table,
            failure.kind,
            now - part.failing_since,
            part.failures,
            part.retry_at - now,
            failure.text[:300],
        )

    def _count_waiting(self) -> None:
        WAITING.set(sum(p.paused for p in self._parts.values()))

    def _recovered(self, part: _Partition) -> None:
        if part.failures:
            log.warning(
                "%s[%d] written again after %d failed attempts over %.0fs",
                part.topic,
                part.partition,
                part.failures,
                time.monotonic() - part.failing_since,
            )
        part.failures = 0
        part.retry_at = 0.0

    def _log_now_and_then(self, table: str, kind: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._logged_at.get((table, kind), -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            self._logged_at[(table, kind)] = now
            log.warning(msg, *args)

    def _consumer_now(self) -> Consumer:
        consumer = self._consumer
        assert consumer is not None, "only while running"
        return consumer


def _retriable_commit_failure(exc: KafkaException) -> Failure:
    """The failure to wait out for a commit Kafka refused; raises `exc` unless Kafka says
    trying again can succeed (a coordinator moving, a broker restarting)."""
    error = exc.args[0]
    if not isinstance(error, KafkaError) or not kafka_retriable(error.code(), error.retriable()):
        raise exc
    kind = f"kafka_{error.name().lower().lstrip('_')}"
    return Failure(True, kind, error.code(), error.str())


def _rows(value: bytes | None) -> bytes:
    """A message's rows. A compaction tombstone has none; a payload that is no envelope at
    all goes to ClickHouse as it is, which refuses it, so it reaches the dead-letter topic
    with the batch's other rows inserted."""
    if value is None:
        return b""
    try:
        return rows_of(value)
    except EnvelopeError:
        return value
