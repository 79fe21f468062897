"""A stage's dead-letter topic: what it could not read, written in its own transaction.

The record is `schemas.deadletter.DeadLetter`, the same the ingest stage writes, so one tool
reads them all (`journeys report` counts them by stage and reason). Written through the
stage's transactional sender: a dead letter is committed with the offsets of the message it
came from, so a restart neither loses nor repeats it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas import envelope
from schemas.deadletter import DeadLetter, FieldError, Reason
from stream_processors.runtime import metrics
from stream_processors.runtime.sender import TransactionalSender

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StageDeadLetters:
    stage: str
    topic: str  # the stage's dead-letter topic (one partition)
    sender: TransactionalSender

    def message(self, payload: bytes | None, error: envelope.EnvelopeError, source: Where) -> None:
        """A whole message that is not a batch envelope this stage can read."""
        self._send(payload or b"", error.reason, [], detail=error.detail, source=source)

    def rows(self, payload: bytes | None, problems: list[FieldError], source: Where) -> None:
        """A whole message of rows the stage could not read (it applies none of them)."""
        self._send(payload or b"", "invalid_field", problems, source=source)

    def events(self, bad: Sequence[tuple[Any, list[FieldError]]], source: Where) -> None:
        """Events of a readable message that lack what the stage relies on; each one is kept
        as it arrived (re-encoded: the envelope holds it as JSON)."""
        for event, problems in bad:
            event_id = event.get("event_id") if isinstance(event, dict) else None
            self._send(
                orjson.dumps(event),
                "invalid_field",
                problems,
                source=source,
                event_id=event_id if isinstance(event_id, str) else None,
            )

    def _send(
        self,
        raw: bytes,
        reason: Reason,
        problems: list[FieldError],
        *,
        source: Where,
        detail: str = "",
        event_id: str | None = None,
    ) -> None:
        text, encoding = DeadLetter.wrap_raw(raw)
        record = DeadLetter(
            stage=self.stage,
            reason=reason,
            errors=problems,
            detail=detail,
            raw=text,
            raw_encoding=encoding,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            event_id=event_id,
            rejected_at=datetime.now(UTC),
        )
        self.sender.produce(self.topic, record.model_dump_json().encode(), None, 0)
        metrics.REJECTED.labels(self.stage, reason).inc()
        log.warning(
            "dead-lettered input",
            extra={
                "stage": self.stage,
                "reason": reason,
                "topic": source.topic,
                "partition": source.partition,
                "offset": source.offset,
            },
        )


@dataclass(frozen=True, slots=True)
class Where:
    """The input message a dead letter came from."""

    topic: str
    partition: int
    offset: int
