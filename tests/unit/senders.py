"""What the recording senders of the stage tests share with the real one."""

from __future__ import annotations

from stream_processors.runtime.sender import envelopes


class RowsAtOnce:
    """`TransactionalSender.produce_rows` without waiting for a commit: the envelopes go
    straight to the recording `produce`, so a test reads what one input made right after it."""

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        raise NotImplementedError

    def produce_rows(
        self,
        topic: str,
        rows: list[bytes],
        watermark_ms: int | None,
        partition: int,
        source: int | None = None,
    ) -> None:
        for message in envelopes(rows, watermark_ms, source):
            self.produce(topic, message, None, partition)
