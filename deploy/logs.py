"""Structured logs: one JSON object per line (or plain text for people at a terminal)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Renders a record and its `extra=` fields as JSON."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    """One readable line, with the `extra=` fields as key=value after the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if not fields:
            return line
        extra = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
        head, sep, tail = line.partition("\n")  # a traceback stays below the fields
        return f"{head} {extra}{sep}{tail}"


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Set up the root logger once, at an entry point."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("faust", "mode", "aiokafka", "kafka", "librdkafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # Our own one-line messages say when ClickHouse is away; the HTTP client would say it
    # at every attempt.
    for chatty in ("urllib3.connectionpool", "clickhouse_connect.driver._backend.http_sync"):
        logging.getLogger(chatty).setLevel(max(logging.ERROR, root.level))
    librdkafka = logging.getLogger("librdkafka")
    librdkafka.filters[:] = [Repeats()]


class Repeats(logging.Filter):
    """Lets a message through once per `quiet_seconds`: librdkafka says the same failure
    (a broker that refuses connections) every time it retries, many times a second."""

    def __init__(self, quiet_seconds: float = 300.0) -> None:
        super().__init__()
        self.quiet_seconds = quiet_seconds
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        # Without the thread and timing parts, which differ between repeats.
        key = _VARYING.sub("", record.getMessage())
        now = record.created
        last = self._last.get(key)
        if last is not None and now - last < self.quiet_seconds:
            return False
        self._last[key] = now
        return True


_VARYING = re.compile(r"\[thrd:[^\]]*\]|\(after \d+ms[^)]*\)|#[a-z]+-\d+")
