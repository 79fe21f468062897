"""The watch loop and its HTTP face: `/health` (503 while a group is stalled), `/metrics`.

Served with uvicorn like the collector; the loop runs in a thread of its own, reading
positions every `poll_seconds` and logging a line when a group stalls and when it recovers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from deploy.watch.stalls import GroupStatus, Position, StallWatch

log = logging.getLogger(__name__)

LAG = Gauge(
    "journeys_watch_lag", "Messages a group has yet to read, committed data only", ["group"]
)
STALLED = Gauge(
    "journeys_watch_stalled", "1 while the group has lag and its offsets do not move", ["group"]
)
STALLED_SECONDS = Gauge(
    "journeys_watch_stalled_seconds",
    "How long the group's offsets have not moved while behind",
    ["group"],
)
READ_FAILURES = Gauge(
    "journeys_watch_read_failing", "1 while the positions cannot be read (Kafka unreachable)"
)


class Watcher:
    """Polls `read` (the positions of the watched groups) and keeps the latest statuses."""

    def __init__(
        self,
        read: Callable[[], Sequence[Position]],
        stall_after: float,
        poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._watch = StallWatch(stall_after)
        self._poll = poll_seconds
        self._clock = clock
        self._stop = threading.Event()
        self.statuses: list[GroupStatus] = []
        self.error: str | None = None

    def poll_once(self) -> list[GroupStatus]:
        try:
            positions = self._read()
        except Exception as exc:  # Kafka down: say so, keep the last statuses, try again
            if self.error is None:
                log.warning("watch: cannot read the groups' offsets: %s", exc)
            self.error = str(exc).splitlines()[0][:200]
            READ_FAILURES.set(1)
            return self.statuses
        READ_FAILURES.set(0)
        self.error = None
        before = {status.group: status.stalled for status in self.statuses}
        self.statuses = self._watch.observe(positions, self._clock())
        for status in self.statuses:
            LAG.labels(status.group).set(status.lag)
            STALLED.labels(status.group).set(1 if status.stalled else 0)
            STALLED_SECONDS.labels(status.group).set(status.stalled_for)
            if status.stalled and not before.get(status.group):
                log.warning(
                    "watch: %s is stalled: lag %d, offsets still for %.0f s on %s",
                    status.group,
                    status.lag,
                    status.stalled_for,
                    ", ".join(status.stalled_partitions),
                )
            elif before.get(status.group) and not status.stalled:
                log.info("watch: %s moves again (lag %d)", status.group, status.lag)
        return self.statuses

    def run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self._poll)

    def stop(self) -> None:
        self._stop.set()

    def health(self) -> tuple[int, dict[str, Any]]:
        stalled = [s.group for s in self.statuses if s.stalled]
        body: dict[str, Any] = {
            "status": "stalled" if stalled else "ok",
            "stalled": stalled,
            "groups": [status_json(s) for s in self.statuses],
        }
        if self.error is not None:
            body["error"] = self.error
        return (503 if stalled else 200), body


def status_json(status: GroupStatus) -> dict[str, Any]:
    return {
        "group": status.group,
        "lag": status.lag,
        "stalled": status.stalled,
        "stalled_for_seconds": round(status.stalled_for, 1),
        "stalled_partitions": list(status.stalled_partitions),
    }


class WatchApp:
    """ASGI: GET /health and GET /metrics; anything else 404."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/health":
            status, body = self._watcher.health()
            payload, kind = orjson.dumps(body), b"application/json"
        elif scope["path"] == "/metrics":
            status, payload, kind = 200, generate_latest(), CONTENT_TYPE_LATEST.encode()
        else:
            status, payload, kind = 404, b'{"status":"not_found"}', b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", kind),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
