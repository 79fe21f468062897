"""Webhook delivery of alerts: a consumer of the committed `alerts` topic, not the detector
(docs/stages/friction.md).

Why a consumer and not the detector itself: the detector's outputs become real when its
Kafka transaction commits, and a worker can die right after that commit. Posting before the
commit could page about an alert that a restarted worker then decides differently (a late
window changes it); posting after it, from the agent, would lose the page if the worker died
in between. Reading `alerts` with `read_committed` and committing the consumer's offset only
once every record up to it is delivered (or dead-lettered) makes delivery at least once;
the `Idempotency-Key` (`<alert id>:<version>`) lets receivers drop the repeats. And the
stream never waits for a receiver: this runs on its own thread, with its own consumer group
(`<prefix>alert-webhooks`); the `alerts` topic has one partition, so one worker of the group
delivers at a time.

Only versions with `notify` are posted, to the teams the version pages (`core/paging.py`)
through the routes of the series each owns (`core/addressing.py`). Silences are read from
the compacted `alert-silences` topic (all of it at start, then as they come, before each
batch of alerts): a team whose series are all silenced is not posted to, which is logged and
counted (`silenced`). Deliveries that fail for good go to `dlq.alerts` with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from schemas.alerting import AlertRouting
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.friction import metrics as friction_metrics
from stream_processors.friction.alerts.core.addressing import address
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.alerts.core.retry import RetryPolicy
from stream_processors.friction.alerts.core.routing import AlertRouter
from stream_processors.friction.alerts.silence_log import SilenceReader
from stream_processors.friction.alerts.webhooks import FailedDelivery, WebhookSender

log = logging.getLogger(__name__)

_OUTCOMES = {
    name: friction_metrics.ALERT_DELIVERIES.labels(name)
    for name in ("delivered", "retried", "failed", "silenced")
}


class AlertDeliverer:
    """Posts committed alert versions to their webhooks; see the module docstring."""

    def __init__(self, settings: Settings, routing: AlertRouting) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings.topics)
        self.router = AlertRouter(routing)
        webhooks = settings.alerts
        self.sender = WebhookSender(
            RetryPolicy.of(webhooks),
            self._dead,
            queue_size=webhooks.queue_size,
            on_count=lambda name: _OUTCOMES[name].inc(),
        )
        self._dlq = Producer(
            {**settings.kafka.as_librdkafka_dict(), "enable.idempotence": True, "acks": "all"}
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.submitted = 0
        self.silenced = 0
        self.silences = SilenceReader(settings)

    def start(self) -> AlertDeliverer:
        self._thread = threading.Thread(target=self._run, name="alert webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading; deliver what is queued (bounded by the settings' close timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.settings.alerts.close_timeout_seconds + 30.0)

    # -- the loop -----------------------------------------------------------------------------

    def _consumer(self) -> Consumer:
        consumer = Consumer(
            {
                **self.settings.kafka.as_librdkafka_dict(),
                "group.id": self.settings.topics.group("alert-webhooks"),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": 10_000,
            }
        )
        consumer.subscribe([self.topics.alerts])
        return consumer

    def _run(self) -> None:
        consumer = self._consumer()
        pending: dict[int, int] = {}  # partition -> offset to commit once all is delivered
        try:
            self.silences.start()
            while not self._stop.is_set():
                messages = consumer.consume(100, 0.2)
                self.silences.poll()  # a silence written before these alerts is heard first
                for msg in messages:
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("alerts consumer: %s", err)
                        continue
                    self._take(msg.value())
                    partition, offset = msg.partition(), msg.offset()
                    if partition is not None and offset is not None:
                        pending[partition] = offset + 1
                if pending and self.sender.queued == 0:
                    self._commit(consumer, pending)
            left = self.sender.close(self.settings.alerts.close_timeout_seconds)
            if pending and left == 0:
                self._commit(consumer, pending)
        except BaseException as exc:  # a dead thread must be visible, not silent
            self.error = exc
            log.exception("alert webhook delivery stopped")
        finally:
            self._dlq.flush(10.0)
            consumer.close()
            self.silences.close()

    def _take(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            record = AlertRecord.from_dict(orjson.loads(value))
        except (ValueError, KeyError, TypeError):
            log.error("unreadable alert record", extra={"value": value[:200]})
            return
        if not record.notify:
            return
        addressed = address(record, self.router, self.silences.held, datetime.now(UTC))
        for team, silence in addressed.silenced:
            self.silenced += 1
            _OUTCOMES["silenced"].inc()
            log.info(
                "alert page silenced",
                extra={
                    "alert_id": record.incident_id,
                    "version": record.version,
                    "team": team,
                    "silence": silence.silence_id,
                    "reason": silence.reason,
                },
            )
        for delivery in addressed.deliveries:
            self.sender.submit(delivery.target, record, delivery.page)
            self.submitted += 1

    def _commit(self, consumer: Consumer, pending: dict[int, int]) -> None:
        # Dead letters first: a record is done once its failure is durable too.
        if self._dlq.flush(30.0):
            return
        offsets = [TopicPartition(self.topics.alerts, p, o) for p, o in pending.items()]
        consumer.commit(offsets=offsets, asynchronous=False)
        pending.clear()

    def _dead(self, failed: FailedDelivery) -> None:
        row: dict[str, Any] = {
            "stage": "alert-webhooks",
            "reason": failed.reason,
            "at": time.time(),
            **failed.to_dict(),
        }
        self._dlq.produce(
            self.topics.dlq_alerts, orjson.dumps(row), failed.idempotency_key.encode()
        )
        self._dlq.poll(0)
