"""The collector's admin listener: GET /health/live, /health/ready and /metrics, served on a
port of their own (`collector.admin_port`), so probes and scrapes still answer while the
ingestion port is full of clients.

- live: the process serves and its Kafka poll thread runs (restart it if not);
- ready: Kafka acknowledges: the last delivery succeeded and a broker answers a metadata
  request for `raw` with a leader for every partition (send no traffic here if not); 503
  while the process drains on SIGTERM;
- metrics: this process's counters, or every worker's summed (`metrics.exposition`).
"""

from __future__ import annotations

from typing import Protocol

from producers.collector import metrics
from producers.collector.app import Receive, Response, Scope, Send

READY_TIMEOUT = 2.0


class Probed(Protocol):
    def healthy(self) -> bool: ...

    async def ready(self, timeout: float) -> str | None: ...


class AdminApp:
    def __init__(self, deliverer: Probed, ready_timeout: float = READY_TIMEOUT) -> None:
        self.deliverer = deliverer
        self.ready_timeout = ready_timeout
        self.draining = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self._answer(scope["method"], scope["path"])
        await response.send(send, [])

    async def _answer(self, method: str, path: str) -> Response:
        if method != "GET":
            return Response.json(405, {"status": "use GET"}, (("Allow", "GET"),))
        if path == "/health/live":
            live = self.deliverer.healthy()
            return Response.json(200 if live else 503, {"status": "live" if live else "dead"})
        if path == "/health/ready":
            problem = "draining" if self.draining else None
            problem = problem or await self.deliverer.ready(self.ready_timeout)
            if problem is None:
                return Response.json(200, {"status": "ready"})
            return Response.json(503, {"status": "unavailable", "reason": problem})
        if path == "/metrics":
            body, content_type = metrics.exposition()
            return Response(200, body, content_type)
        return Response.json(404, {"status": f"no route {path}"})
