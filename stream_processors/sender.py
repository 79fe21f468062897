"""Everything a stage writes to Kafka, through one transactional confluent-kafka producer.

faust's own producer and table changelog path manage a few thousand messages/s here, so
stages send their outputs, dead letters and state changelogs through this producer instead.
All of it goes into one Kafka transaction that is committed just before faust commits the
source offsets (see `CommitSensor`), so a stage's outputs and its state change become
visible together or not at all. The source offsets are not part of that transaction; the
state records the last applied offset per input partition instead (`state.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer

from schemas.settings import KafkaSettings

log = logging.getLogger(__name__)

BeforeCommit = Callable[[], None]


class SenderError(RuntimeError):
    """The transactional producer failed; the stage must stop and restore from Kafka."""


class TransactionalSender:
    """A transactional producer whose transaction spans one faust commit interval."""

    def __init__(
        self,
        kafka: KafkaSettings,
        transactional_id: str,
        linger_ms: int = 20,
        transaction_timeout_ms: int = 30_000,
    ) -> None:
        conf: dict[str, Any] = {
            **kafka.as_librdkafka_dict(),
            "transactional.id": transactional_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 512 * 1024,
            "transaction.timeout.ms": transaction_timeout_ms,
            "partitioner": "murmur2_random",
        }
        self._producer = Producer(conf)
        self._before_commit: list[BeforeCommit] = []
        self._dirty = False
        self.transactions = 0
        self.messages = 0
        try:
            # Fences an earlier incarnation with the same id and aborts its open transaction.
            self._producer.init_transactions(30.0)
        except KafkaException as exc:
            raise SenderError(
                f"Kafka transactions could not start ({exc}); is Kafka reachable at "
                f"{kafka.bootstrap_servers}? (JOURNEYS_KAFKA__BOOTSTRAP_SERVERS)"
            ) from exc
        self._producer.begin_transaction()

    def before_commit(self, hook: BeforeCommit) -> None:
        """Run `hook` (it may call `produce`) right before each transaction commits."""
        self._before_commit.append(hook)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one message in the open transaction, waiting (never dropping) when full."""
        kwargs: dict[str, Any] = {"key": key}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, value, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._dirty = True
        self.messages += 1

    def commit(self) -> None:
        """Make everything produced since the last commit durable and visible, atomically."""
        for hook in self._before_commit:
            hook()
        if not self._dirty:
            return
        started = time.perf_counter()
        try:
            self._producer.commit_transaction(60.0)
            self._producer.begin_transaction()
        except KafkaException as exc:
            raise SenderError(f"committing the stage's transaction failed: {exc}") from exc
        self._dirty = False
        self.transactions += 1
        log.debug("transaction committed in %.1f ms", (time.perf_counter() - started) * 1e3)

    def poll(self) -> None:
        """Serve delivery events; cheap, call it once per processed message."""
        self._producer.poll(0)

    def close(self) -> None:
        """Commit what is pending and release the producer."""
        try:
            self.commit()
        finally:
            self._producer.flush(10.0)
