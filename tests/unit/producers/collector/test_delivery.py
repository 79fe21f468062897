"""Per-request acknowledgement: a request waits for its own batches, settled from another
thread as confluent-kafka's delivery reports are. A fake publisher stands in for Kafka."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable

import orjson
import pytest
from prometheus_client import REGISTRY

from producers.collector.delivery import DeliveryError, KafkaDelivery, Probe
from schemas import envelope
from schemas.partitioning import partition_for
from schemas.settings import BatchSettings

Sent = tuple[str, int, bytes, Callable[[str | None], None]]


class FakePublisher:
    topic = "t.raw"
    partitions = 4

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.lock = threading.Lock()

    def send_tracked(self, messages: Iterable[Sent], poll_seconds: float = 0.0) -> None:
        with self.lock:
            self.sent += list(messages)
        if poll_seconds:
            time.sleep(0.005)

    def flush(self, timeout: float = 60.0) -> None:
        return None

    def report(self, error: str | None = None) -> None:
        """Answer every message sent so far, from a thread of its own, as librdkafka does."""
        with self.lock:
            pending, self.sent = self.sent, []

        def answer() -> None:
            for *_rest, on_done in pending:
                on_done(error)

        thread = threading.Thread(target=answer)
        thread.start()
        thread.join()


def delivery(
    publisher: FakePublisher, linger: float = 0.01, probe: Probe | None = None
) -> KafkaDelivery:
    return KafkaDelivery(publisher, "t.dlq.ingest", BatchSettings(), linger, probe)  # type: ignore[arg-type]


async def acknowledge_when_sent(publisher: FakePublisher, count: int, error: str | None) -> None:
    while len(publisher.sent) < count:
        await asyncio.sleep(0.002)
    publisher.report(error)


def test_concurrent_requests_share_messages_and_each_waits_for_its_own() -> None:
    publisher = FakePublisher()

    async def scenario() -> list[Sent]:
        d = delivery(publisher)
        d.start()
        one = asyncio.create_task(d.deliver([("customer_id:a", b'{"n":1}')], [], "s", 5.0))
        two = asyncio.create_task(d.deliver([("customer_id:a", b'{"n":2}')], [], "s", 5.0))
        await asyncio.sleep(0.05)  # past the linger: one message holds both requests' events
        sent = list(publisher.sent)
        assert not one.done() and not two.done()
        publisher.report()
        await asyncio.gather(one, two)
        await d.close()
        return sent

    sent = asyncio.run(scenario())
    assert len(sent) == 1
    topic, _partition, value, _cb = sent[0]
    assert topic == "t.raw"
    assert envelope.decode(value).events == [{"n": 1}, {"n": 2}]


def test_dead_letters_go_to_the_dead_letter_topic_and_are_waited_for() -> None:
    publisher = FakePublisher()

    async def scenario() -> list[str]:
        d = delivery(publisher)
        d.start()
        waiting = asyncio.create_task(d.deliver([], [b'{"dead":1}'], "web-shop", 5.0))
        while not publisher.sent:
            await asyncio.sleep(0.002)
        topics = [topic for topic, *_rest in publisher.sent]
        assert not waiting.done()
        publisher.report()
        await waiting
        await d.close()
        return topics

    assert asyncio.run(scenario()) == ["t.dlq.ingest"]


def test_a_refused_batch_fails_every_request_in_it() -> None:
    publisher = FakePublisher()

    async def scenario() -> None:
        d = delivery(publisher, linger=0.0)
        d.start()
        waiting = asyncio.create_task(d.deliver([("k", b"{}")], [], "s", 5.0))
        await acknowledge_when_sent(publisher, 1, "Broker: Not enough in-sync replicas")
        with pytest.raises(DeliveryError, match="in-sync"):
            await waiting
        await d.close()

    asyncio.run(scenario())


def test_no_answer_within_the_timeout_is_a_delivery_error() -> None:
    publisher = FakePublisher()

    async def scenario() -> None:
        d = delivery(publisher, linger=0.0)
        d.start()
        with pytest.raises(DeliveryError, match="did not acknowledge within"):
            await d.deliver([("k", b"{}")], [], "s", 0.05)
        publisher.report()  # a late answer settles nobody and breaks nothing
        await asyncio.sleep(0.01)
        await d.close()

    asyncio.run(scenario())


def test_a_request_with_nothing_to_send_returns_at_once() -> None:
    publisher = FakePublisher()

    async def scenario() -> None:
        d = delivery(publisher)
        await d.deliver([], [], "s", 0.01)

    asyncio.run(scenario())
    assert publisher.sent == []


def test_a_producer_refusing_locally_is_a_delivery_error() -> None:
    from confluent_kafka import KafkaException

    class ClosedPublisher(FakePublisher):
        def send_tracked(self, messages: Iterable[Sent], poll_seconds: float = 0.0) -> None:
            raise KafkaException("producer is closed")

    async def scenario() -> None:
        d = delivery(ClosedPublisher(), linger=0.0)
        with pytest.raises(DeliveryError, match="closed"):
            await d.deliver([], [b"{}"], "s", 1.0)

    asyncio.run(scenario())


def test_events_go_to_their_keys_partition_first_time_and_from_the_cache() -> None:
    publisher = FakePublisher()
    keys = [f"customer_id:c{i}" for i in range(12)]
    sent: list[Sent] = []

    async def scenario() -> None:
        d = delivery(publisher, linger=0.0)
        d.start()
        for _round in range(2):  # the second round finds every key's partition remembered
            task = asyncio.create_task(
                d.deliver([(k, orjson.dumps(k)) for k in keys], [], "s", 5.0)
            )
            while not publisher.sent:
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.01)
            sent.extend(publisher.sent)
            publisher.report()
            await task
        await d.close()

    asyncio.run(scenario())
    events = 0
    for _topic, partition, value, _cb in sent:
        for key in envelope.decode(value).events:
            assert partition == partition_for(key.encode(), publisher.partitions)
            events += 1
    assert events == 2 * len(keys)


def test_acknowledged_events_are_counted_and_a_refusal_makes_it_not_ready() -> None:
    publisher = FakePublisher()
    probed: list[float] = []

    def probe(timeout: float) -> str | None:
        probed.append(timeout)
        return None

    async def scenario() -> tuple[float, float, str | None, str | None]:
        d = delivery(publisher, 0.0, probe)
        before = _acked("event")
        d.start()
        events = [("customer_id:a", b'{"n":1}'), ("customer_id:b", b'{"n":2}')]
        waiting = asyncio.create_task(d.deliver(events, [], "s", 5.0))
        await acknowledge_when_sent(publisher, 1, None)
        await waiting
        ready = await d.ready(1.5)
        refused = asyncio.create_task(d.deliver([("k", b"{}")], [], "s", 5.0))
        await acknowledge_when_sent(publisher, 1, "Broker: Not enough in-sync replicas")
        with pytest.raises(DeliveryError):
            await refused
        not_ready = await d.ready(1.5)
        await d.close()
        return before, _acked("event"), ready, not_ready

    before, after, ready, not_ready = asyncio.run(scenario())
    assert after - before == 2
    assert ready is None and probed == [1.5]
    assert not_ready is not None and "in-sync" in not_ready


def _acked(kind: str) -> float:
    value = REGISTRY.get_sample_value("journeys_collector_acked_total", {"kind": kind})
    return value or 0.0
