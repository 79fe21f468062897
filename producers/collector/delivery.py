"""Getting one request's events into Kafka and telling that request, and only it, when Kafka
has them: the adapter between the asyncio server and confluent-kafka.

Events are coalesced across concurrent requests (`coalesce`), produced from the event loop
through `Publisher.send_tracked`, and a poll thread serves the delivery reports. A report
settles the requests whose events its batch carried, back on the loop through
`call_soon_threadsafe`. So a request waits for its own batches, never for a global flush.
History (`/v1/import`) is coalesced apart and goes to the history domain's `raw`
(`schemas/history.py`), never in one message with live events.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from producers.collector import metrics
from producers.collector.coalesce import Batch, Coalescer
from producers.publisher import FAILED, PUBLISHED, Publisher, PublishError
from schemas.partitioning import partition_for
from schemas.settings import BatchSettings, KafkaSettings

log = logging.getLogger(__name__)

# A person's events keep coming back to the same key, and murmur2 in Python costs more per
# event than the rest of queueing it: remember this many keys' partitions (then start over).
PARTITION_CACHE = 1 << 16


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge some of a request's events in time (or refused them)."""


class Ticket:
    """One request's wait: how many of its events and dead letters are not yet acknowledged."""

    __slots__ = ("future", "pending")

    def __init__(self, future: asyncio.Future[None], pending: int) -> None:
        self.future = future
        self.pending = pending
        # A request that timed out no longer awaits its future: mark a late error as seen.
        future.add_done_callback(_retrieve)

    def settle(self, count: int, error: str | None) -> None:
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(DeliveryError(error))
            return
        self.pending -= count
        if self.pending <= 0:
            self.future.set_result(None)


Probe = Callable[[float], str | None]


def metadata_probe(kafka: KafkaSettings, topic: str) -> Probe:
    """A readiness check: ask a broker for `topic`'s metadata now (a real request, not the
    client's cache); None when every partition has a leader, else what is wrong."""
    admin = AdminClient(kafka.as_librdkafka_dict())

    def probe(timeout: float) -> str | None:
        try:
            meta = admin.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            return f"Kafka did not answer: {exc}"
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return f"topic {topic} is not available"
        leaderless = sum(1 for p in found.partitions.values() if p.leader < 0 or p.error)
        return f"{leaderless} partitions of {topic} have no leader" if leaderless else None

    return probe


class KafkaDelivery:
    def __init__(
        self,
        publisher: Publisher,
        dlq_topic: str,
        batch: BatchSettings,
        linger_seconds: float,
        probe: Probe | None = None,
        *,
        history_topic: str | None = None,
    ) -> None:
        self.publisher = publisher
        self.dlq_topic = dlq_topic
        self.history_topic = history_topic  # the history domain's `raw`: as many partitions
        self.linger = linger_seconds
        self.probe = probe
        self._last_failure: str | None = None  # the last delivery report's error, until a success
        self._coalescer: Coalescer[Ticket] = Coalescer(batch.max_events, batch.max_bytes)
        self._history: Coalescer[Ticket] = Coalescer(batch.max_events, batch.max_bytes)
        self._partitions: dict[str, int] = {}  # key -> partition, of the keys seen lately
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_at: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="collector-kafka-poll", daemon=True)

    def start(self) -> None:
        """Start serving delivery reports; call from the event loop that will deliver."""
        self._loop = asyncio.get_running_loop()
        self._poller.start()

    def healthy(self) -> bool:
        return self._poller.is_alive() and not self._stop.is_set()

    async def ready(self, timeout: float) -> str | None:
        """None when this process can get events acknowledged now: its poll thread runs, its
        last delivery report was a success, and a broker answers for `raw` with a leader for
        every partition; else why not."""
        if not self.healthy():
            return "not delivering (starting or shutting down)"
        if self._last_failure is not None:
            return f"Kafka refused the last delivery: {self._last_failure}"
        if self.probe is None:
            return None
        return await asyncio.to_thread(self.probe, timeout)

    async def deliver(
        self,
        events: list[tuple[str, bytes]],
        dead_letters: list[bytes],
        dead_key: str,
        timeout: float,
        history: bool = False,
    ) -> None:
        """Queue the events and dead letters of one request; return once Kafka has them all.
        Raise `DeliveryError` if it refused any or did not answer within `timeout` seconds.
        `history`: the events go to the history domain's `raw`."""
        if history and self.history_topic is None:
            raise DeliveryError("no history topic to import into")
        loop = asyncio.get_running_loop()
        ticket = Ticket(loop.create_future(), len(events) + len(dead_letters))
        if not ticket.pending:
            return
        try:
            self._queue(ticket, events, dead_letters, dead_key, history)
        except KafkaException as exc:  # refused locally (e.g. a closed producer): retryable
            raise DeliveryError(str(exc)) from None
        if (len(self._coalescer) or len(self._history)) and self._flush_at is None:
            self._flush_at = loop.call_later(self.linger, self._flush)
        try:
            await asyncio.wait_for(asyncio.shield(ticket.future), timeout)
        except TimeoutError:
            raise DeliveryError(f"Kafka did not acknowledge within {timeout:g} s") from None

    def _queue(
        self,
        ticket: Ticket,
        events: list[tuple[str, bytes]],
        dead_letters: list[bytes],
        dead_key: str,
        history: bool = False,
    ) -> None:
        full = []
        known = self._partitions
        coalescer = self._history if history else self._coalescer
        for key, fragment in events:
            partition = known.get(key)
            if partition is None:
                partition = self._partition(key)
            batch = coalescer.add(partition, fragment, ticket)
            if batch is not None:
                full.append(batch)
        if dead_letters:
            dlq = partition_for(dead_key.encode() or b"-", self.publisher.partitions)
            owners: Counter[Ticket] = Counter({ticket: 1})
            report = functools.partial(self._reported, "dead_letter", owners)
            self.publisher.send_tracked(
                (self.dlq_topic, dlq, record, report) for record in dead_letters
            )
        self._send(full, history)

    def _partition(self, key: str) -> int:
        if len(self._partitions) >= PARTITION_CACHE:
            self._partitions.clear()
        partition = self._partitions[key] = partition_for(key.encode(), self.publisher.partitions)
        return partition

    async def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, wait for Kafka's answers, stop the poll thread."""
        self._flush()
        self._stop.set()
        if self._poller.is_alive():
            await asyncio.to_thread(self._poller.join)
        try:
            await asyncio.to_thread(self.publisher.flush, timeout)
        except PublishError as exc:
            log.error("collector: events left unacknowledged at shutdown: %s", exc)

    def _flush(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
        self._flush_at = None
        self._send(self._coalescer.drain())
        self._send(self._history.drain(), history=True)

    def _send(self, batches: list[Batch[Ticket]], history: bool = False) -> None:
        if batches:
            topic = self.publisher.topic
            if history and self.history_topic is not None:  # deliver() saw to it
                topic = self.history_topic
            self.publisher.send_tracked(
                (
                    topic,
                    b.partition,
                    b.encode(),
                    functools.partial(self._reported, "event", b.owners),
                )
                for b in batches
            )

    def _reported(self, kind: str, owners: Counter[Ticket], error: str | None) -> None:
        """A delivery report, in whichever thread served it: count it, and settle its owners
        on the loop."""
        count = owners.total()
        if error is None:
            metrics.ACKED.labels(kind).inc(count)
            if kind == "event":
                PUBLISHED.inc(count)
        else:
            metrics.NOT_ACKED.labels(kind).inc(count)
            if kind == "event":
                FAILED.inc(count)
        self._last_failure = error
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(_settle, owners, error)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.publisher.send_tracked((), poll_seconds=0.1)


def _settle(owners: Counter[Ticket], error: str | None) -> None:
    for ticket, count in owners.items():
        ticket.settle(count, error)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
