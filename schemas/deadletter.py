"""Dead-letter records: a rejected payload, byte for byte, with the reason it was rejected."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

Reason = Literal[
    "malformed_json",
    "not_an_object",
    "unsupported_envelope",
    "invalid_field",
    "oversized",
    "future_timestamp",
    "erased_person",  # dropped: the person was erased (nothing of the event is kept)
    "old_timestamp",
]


class FieldError(BaseModel):
    """One validation problem: where (a dotted path) and what."""

    field: str
    message: str


class DeadLetter(BaseModel):
    """What a stage could not accept, and why. `raw` is the payload as it arrived."""

    stage: str
    reason: Reason
    errors: list[FieldError] = []
    detail: str = ""
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    source_topic: str
    source_partition: int
    source_offset: int
    event_id: str | None = None
    rejected_at: datetime

    @staticmethod
    def wrap_raw(payload: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
        """Keep text readable and anything else intact."""
        try:
            return payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(payload).decode("ascii"), "base64"

    def raw_bytes(self) -> bytes:
        if self.raw_encoding == "base64":
            return base64.b64decode(self.raw)
        return self.raw.encode("utf-8")


class SinkDeadLetter(BaseModel):
    """Rows ClickHouse refused for a reason retrying cannot fix (the sink's dead-letter
    topic; the record's key is `token`). `rows` is the JSON array the sink inserted, the
    rows byte for byte as the stages wrote them; `journeys sink replay-dead-letters` inserts
    it again with the same token, so replaying twice writes once."""

    stage: Literal["sink"] = "sink"
    table: str
    error_code: int | None
    error: str
    rows: str
    rows_encoding: Literal["utf-8", "base64"] = "utf-8"
    row_count: int | None  # None: the message's rows could not be told apart
    token: str  # the piece's insert deduplication token
    source_topic: str
    source_topic_id: str | None  # None: a batch named the v1 way, without it
    source_partition: int
    first_offset: int
    last_offset: int
    rejected_at: datetime

    def rows_bytes(self) -> bytes:
        if self.rows_encoding == "base64":
            return base64.b64decode(self.rows)
        return self.rows.encode("utf-8")
