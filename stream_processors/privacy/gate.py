"""The ingest stage's privacy gate: contact hashes are put in the form they were first seen in
(across key rotations: `stream_processors/privacy/core/rotation.py`), then events of erased
persons are dropped before anything of them is validated, deduplicated or forwarded, wherever
they come from (new traffic, a replay of `raw`, a history import, a dead-letter retry).

Every worker follows the compacted `privacy-suppressions` and `identity-key-aliases` topics from
their beginning in threads (no consumer group: every worker needs all of them), as the identity
map replica does, and processes nothing before it has read both to their end. A dropped
event leaves a dead letter with reason `erased_person` that keeps its event id and nothing of
its content, and counts in `journeys_privacy_dropped_total{stage="ingest"}`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from prometheus_client import Counter

from producers.pii import derive, hash_with
from schemas.deadletter import DeadLetter
from schemas.privacy import Suppression, SuppressionList
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.privacy.core.rotation import Derive, canonical
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


class CompactedFollower:
    """Reads a one-partition compacted topic from its beginning and keeps following it in a
    thread, handing each record (key, value) to `apply`; `caught_up` once it read the end."""

    def __init__(
        self, settings: Settings, topic: str, apply: Callable[[bytes | None, bytes | None], None]
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.apply = apply
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=topic, daemon=True)

    def start(self) -> None:
        self._thread.start()

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
                    err = msg.error()
                    if err is None:
                        self.apply(msg.key(), msg.value())
                    elif err.code() == KafkaError._PARTITION_EOF:
                        self.caught_up.set()
                    else:
                        log.warning("%s: %s", self.topic, err)
        except Exception:
            log.exception("%s: follower stopped", self.topic)
            self.caught_up.set()
        finally:
            consumer.close()


class SuppressionReplica:
    """Follows `privacy-suppressions` into a `SuppressionList`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.list = suppression_list(settings)
        topic = Topics.from_settings(settings.topics).privacy_suppressions
        self._follower = CompactedFollower(settings, topic, self._apply)
        self.caught_up = self._follower.caught_up

    def _apply(self, _key: bytes | None, value: bytes | None) -> None:
        if value is None:  # never written: erased stays erased
            return
        self.list.add(Suppression.model_validate_json(value).hash)
        log.info("privacy: %d suppressed hashes", len(self.list))

    def start(self) -> SuppressionReplica:
        self._follower.start()
        return self

    def stop(self) -> None:
        self._follower.stop()


class KeyAliases:
    """Follows `identity-key-aliases`: a contact hash under a newer key -> its first form."""

    def __init__(self, settings: Settings) -> None:
        self.aliases: dict[str, str] = {}
        self.topic = Topics.from_settings(settings.topics).identity_key_aliases
        self._follower = CompactedFollower(settings, self.topic, self._apply)
        self.caught_up = self._follower.caught_up
        pii = settings.pii
        self._active, self._previous = pii.active_key_id, pii.derived_from.get(pii.active_key_id)
        self._window = pii.rotation_window_until
        self._pii = pii

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:  # an erased person's alias
            self.aliases.pop(key.decode(), None)
        else:
            self.aliases[key.decode()] = value.decode()

    def start(self) -> KeyAliases:
        self._follower.start()
        return self

    def stop(self) -> None:
        self._follower.stop()

    def deriving(self, now: datetime) -> Derive | None:
        """During the rotation window: what carries a hash under the replaced key to the
        active one."""
        if self._previous is None or self._window is None or now >= self._window:
            return None
        prefix, pii, active = f"{self._previous}:", self._pii, self._active
        return lambda value: derive(pii, value, active) if value.startswith(prefix) else None


class IngestGate:
    """Drops the events of erased persons from one raw message, with a reasoned record."""

    def __init__(
        self, replica: SuppressionReplica, aliases: KeyAliases, sender: TransactionalSender
    ) -> None:
        self.replica = replica
        self.aliases = aliases
        self.sender = sender
        self.topics = Topics.from_settings(replica.settings.topics)

    def admit(self, events: list[Any], partition: int, offset: int, now: datetime) -> list[Any]:
        """The events to process, their contact hashes in their first form (across key
        rotations); the erased persons' are dead-lettered without their content."""
        self._canonical(events, now)
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

    def _canonical(self, events: list[Any], now: datetime) -> None:
        aliases = self.aliases.aliases
        derive_now = self.aliases.deriving(now)
        if not aliases and derive_now is None:
            return
        for event in events:
            added = canonical(event, aliases, derive_now)
            for key, first in (added or {}).items():
                aliases[key] = first  # in the transaction: other workers read it once committed
                self.sender.produce(self.aliases.topic, first.encode(), key.encode(), 0)

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
