"""The sink's dead-letter topic: rows ClickHouse refused, as records keyed by their token.

A record is sent, and Kafka has it, before the sink moves its offsets past the batch. After
a crash in between, the rebuilt batch sends the same record again with the same key: a
reader recognises the repeat by its key, and a replay inserts both with the same token, so
ClickHouse keeps the rows once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import KafkaError, Producer

from schemas.deadletter import DeadLetter, SinkDeadLetter
from schemas.settings import KafkaSettings
from sinks.core.failures import Failure

# A refusal's text can be long (ClickHouse quotes the data); a few kilobytes say enough.
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True, slots=True)
class RefusedRows:
    """Where refused rows come from: their table, topic, partition, offsets and token."""

    table: str
    topic: str
    topic_id: str | None
    partition: int
    first_offset: int
    last_offset: int
    token: str


def dead_letter(
    where: RefusedRows,
    rows_json: bytes,
    row_count: int | None,
    failure: Failure,
    rejected_at: datetime,
) -> SinkDeadLetter:
    """The record for rows ClickHouse refused with `failure`."""
    rows, encoding = DeadLetter.wrap_raw(rows_json)
    return SinkDeadLetter(
        table=where.table,
        error_code=failure.code,
        error=failure.text[:MAX_ERROR_CHARS],
        rows=rows,
        rows_encoding=encoding,
        row_count=row_count,
        token=where.token,
        source_topic=where.topic,
        source_topic_id=where.topic_id,
        source_partition=where.partition,
        first_offset=where.first_offset,
        last_offset=where.last_offset,
        rejected_at=rejected_at,
    )


class DeadLetterNotSentError(RuntimeError):
    """Kafka did not confirm a dead letter in time; the sink tries again later."""


@dataclass
class DeadLetterSender:
    """Sends dead letters to one topic and waits until Kafka has each one."""

    kafka: KafkaSettings
    topic: str
    timeout: float = 10.0
    _producer: Producer | None = field(default=None, repr=False)

    def send(self, record: SinkDeadLetter) -> None:
        """Send and wait for the broker's acknowledgement, or raise DeadLetterNotSentError."""
        producer = self._producer
        if producer is None:
            producer = self._producer = Producer(
                {
                    **self.kafka.as_librdkafka_dict(),
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 0,
                    "message.max.bytes": 16 * 1024 * 1024,
                }
            )
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                errors.append(err)

        producer.produce(
            self.topic,
            key=record.token.encode(),
            value=record.model_dump_json().encode(),
            on_delivery=delivered,
        )
        if producer.flush(self.timeout) > 0 or errors:
            reason = errors[0].str() if errors else "not acknowledged in time"
            raise DeadLetterNotSentError(f"dead letter to {self.topic}: {reason}")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout)
            self._producer = None
