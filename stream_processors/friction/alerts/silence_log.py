"""The `alert-silences` topic: writing a silence (`journeys alerts silence`) and following
every silence (the webhook thread). The decisions are `core/silences.py`'s.

The topic is compacted and keyed by silence id, so it holds the latest version of every
silence however old; the reader takes all of it when it starts, then what comes, without a
consumer group (nothing to commit: it is read whole every time).
"""

from __future__ import annotations

import logging

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.friction.alerts.core.silences import Silence, Silences

log = logging.getLogger(__name__)


def write_silence(settings: Settings, silence: Silence, timeout: float = 30.0) -> None:
    """Publish one silence and wait until the broker has it; raises when it does not."""
    producer = Producer(
        {**settings.kafka.as_librdkafka_dict(), "enable.idempotence": True, "acks": "all"}
    )
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    topic = Topics.from_settings(settings.topics).alert_silences
    value = orjson.dumps(silence.to_dict())
    producer.produce(topic, value, silence.silence_id.encode(), on_delivery=delivered)
    if producer.flush(timeout) or failures:
        raise RuntimeError(f"the silence did not reach {topic}: {'; '.join(failures) or 'timeout'}")


class SilenceReader:
    """Every silence on the topic, kept up to date by `poll()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = Topics.from_settings(settings.topics).alert_silences
        self.held = Silences()
        self._consumer: Consumer | None = None
        self._last_error = ""  # logged once until it changes: poll() runs several times a second

    def start(self, timeout: float = 10.0) -> None:
        """Read the topic to its end (so no page goes out before the silences are known)."""
        consumer = Consumer(
            {
                **self.settings.kafka.as_librdkafka_dict(),
                "group.id": self.settings.topics.group("alert-silences-reader"),
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._consumer = consumer
        while self._take(consumer.consume(1000, timeout)):
            pass

    def poll(self) -> None:
        if self._consumer is not None:
            self._take(self._consumer.consume(1000, 0))

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _take(self, messages: list[Message]) -> bool:
        """Apply `messages`; False once the end of the topic, nothing, or an error was reached
        (a deployment whose topics predate silences still delivers, without them)."""
        more = bool(messages)
        for msg in messages:
            err = msg.error()
            if err is not None:
                more = False
                if err.code() != KafkaError._PARTITION_EOF and str(err) != self._last_error:
                    self._last_error = str(err)
                    log.warning("alert silences not read (run `journeys topics`?): %s", err)
                continue
            value = msg.value()
            if value is None:
                continue
            try:
                self.held.apply(Silence.from_dict(orjson.loads(value)))
            except (ValueError, KeyError, TypeError):
                log.error("unreadable silence record", extra={"value": value[:200]})
        return more
