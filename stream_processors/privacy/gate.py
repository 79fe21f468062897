"""The ingest stage's suppression gate: events of erased persons are dropped before anything of
them is validated, deduplicated or forwarded, wherever they come from (new traffic, a replay of
`raw`, a history import, a dead-letter retry).

Every worker follows the compacted `privacy-suppressions` topic from its beginning in a thread
(no consumer group: every worker needs all of it), as the identity map replica does. A dropped
event leaves a dead letter with reason `erased_person` that keeps its event id and nothing of
its content, and counts in `journeys_privacy_dropped_total{stage="ingest"}`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from prometheus_client import Counter

from producers.pii import hash_with
from schemas.deadletter import DeadLetter
from schemas.privacy import Suppression, SuppressionList
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.runtime.sender import TransactionalSender

log = logging.getLogger(__name__)

DROPPED = Counter(
    "journeys_privacy_dropped_total", "Events or rows of erased persons dropped", ["stage"]
)


def suppression_list(settings: Settings) -> SuppressionList:
    """An empty list whose lookups hash with the configured keys; a key id no longer
    configured matches nothing."""
    pii = settings.pii

    def hasher(key_id: str, value: str) -> str:
        return hash_with(pii, key_id, value) if key_id in pii.keys else ""

    return SuppressionList(hasher)


class SuppressionReplica:
    """Follows `privacy-suppressions` into a `SuppressionList`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = Topics.from_settings(settings.topics).privacy_suppressions
        self.list = suppression_list(settings)
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="privacy", daemon=True)

    def start(self) -> SuppressionReplica:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self.settings.kafka.as_librdkafka_dict(),
                "group.id": f"journeys-privacy-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
            }
        )
        try:
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            while not self._stop.is_set():
                for msg in consumer.consume(10_000, 0.2):
                    err, value = msg.error(), msg.value()
                    if err is None and value is not None:
                        self.list.add(Suppression.model_validate_json(value).hash)
                        log.info("privacy: %d suppressed hashes", len(self.list))
                    elif err is not None and err.code() == KafkaError._PARTITION_EOF:
                        self.caught_up.set()
                    elif err is not None:
                        log.warning("privacy suppression replica: %s", err)
        except Exception:
            log.exception("privacy suppression replica stopped")
            self.caught_up.set()
        finally:
            consumer.close()


class IngestGate:
    """Drops the events of erased persons from one raw message, with a reasoned record."""

    def __init__(self, replica: SuppressionReplica, sender: TransactionalSender) -> None:
        self.replica = replica
        self.sender = sender
        self.topics = Topics.from_settings(replica.settings.topics)

    def admit(self, events: list[Any], partition: int, offset: int, now: datetime) -> list[Any]:
        """The events to process; the others are dead-lettered without their content."""
        suppressed = self.replica.list
        if not len(suppressed):
            return events
        kept = []
        for event in events:
            if not suppressed.holds_event(event):
                kept.append(event)
                continue
            self._drop(event, partition, offset, now)
        return kept

    def _drop(self, event: Any, partition: int, offset: int, now: datetime) -> None:
        event_id = event.get("event_id")
        record = DeadLetter(
            stage="ingest",
            reason="erased_person",
            raw="",
            source_topic=self.topics.raw,
            source_partition=partition,
            source_offset=offset,
            event_id=event_id if isinstance(event_id, str) else None,
            rejected_at=now,
        )
        self.sender.produce(
            self.topics.dlq_ingest, record.model_dump_json().encode(), None, partition
        )
        DROPPED.labels("ingest").inc()
