"""The replica of the identity map that every routing worker holds.

The authority publishes each identifier whose person changed to the compacted, one-partition
`identity-map` topic (key: the identifier, value: a JSON row). Every worker reads all of it,
from the beginning, with its own confluent-kafka consumer in a thread (no consumer group, so
every worker gets everything), and keeps following it. faust's GlobalTable would do the same
at the ~6,000 records/s its changelog reader manages here; this reads at consumer speed.

Only committed records count (`read_committed`): the authority writes them in the same
transaction as its state, so a replica never holds a decision the authority could lose.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from schemas.settings import KafkaSettings
from stream_processors.identity import metrics as identity_metrics

log = logging.getLogger(__name__)


def map_row(key: str, person: str, remapped: bool, version: int, at_ms: int) -> bytes:
    """One `identity-map` record: also a row of ClickHouse's `identity_overrides`."""
    return orjson.dumps(
        {
            "identifier": key,
            "person_id": person,
            "remapped": remapped,
            "version": version,
            "published_at": at_ms,
        }
    )


class MapReplica:
    """identifier key -> person id, for every remapped identifier; follows the topic."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.data: dict[str, str] = {}
        self.applied = 0
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> MapReplica:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="identity-map", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    def wait_caught_up(self, timeout: float | None = None) -> bool:
        """Block until the replica has read the topic up to its end as of start."""
        return self.caught_up.wait(timeout)

    def apply(self, value: bytes | None, now_ms: int | None = None) -> None:
        """Apply one record (exposed for tests and the bench)."""
        if value is None:
            return
        row = orjson.loads(value)
        key, person = row["identifier"], row["person_id"]
        if row["remapped"]:
            self.data[key] = person
        else:
            self.data.pop(key, None)
        self.applied += 1
        if now_ms is not None and self.caught_up.is_set():
            identity_metrics.REPLICA_LAG.observe(
                max(0, now_ms - row.get("published_at", now_ms)) / 1000
            )

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self.kafka.as_librdkafka_dict(),
                "group.id": f"journeys-identity-map-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
            }
        )
        try:
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            while not self._stop.is_set():
                msgs: list[Any] = consumer.consume(10_000, 0.2)
                now_ms = int(time.time() * 1000)
                for msg in msgs:
                    err = msg.error()
                    if err is None and msg.value() is None:  # an erased identifier
                        self.data.pop(msg.key().decode(), None)
                    elif err is None:
                        self.apply(msg.value(), now_ms)
                    elif err.code() == KafkaError._PARTITION_EOF:
                        if not self.caught_up.is_set():
                            log.info("identity map replica caught up", extra={"n": len(self.data)})
                        self.caught_up.set()
                    else:
                        log.warning("identity map replica: %s", err)
        except BaseException as exc:  # surfaced to the routing agent through `error`
            self.error = exc
            log.exception("identity map replica stopped")
            self.caught_up.set()
        finally:
            consumer.close()
