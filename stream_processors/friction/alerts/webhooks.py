"""Delivery of incident records to webhooks, off the caller's thread (docs/concepts.md §6).

`WebhookSender.submit(target, incident)` renders the body (generic JSON, Slack-compatible or
PagerDuty Events v2, `core/bodies.py`), puts it on the endpoint's bounded queue and returns
at once: a stage never waits for a receiver. One thread per endpoint posts its queue in
order (an incident's `resolved` never overtakes its `firing`), so a slow or dead receiver
delays only its own records. Every request carries `Idempotency-Key: <incident
id>:<version>`, the same on every retry, so a receiver that got a request whose answer was
lost drops the repeat.

Retries, backoff and when to give up are `webhook_retry.py`'s. A record that cannot be
delivered (rejected, out of attempts or time, queue full, shut down first) goes to the
`on_dead_letter` callback with its reason; the caller writes it to the dead-letter topic.
Nothing is dropped silently. URLs may hold tokens: logs and dead letters name an endpoint
by scheme and host only.

Counters for Prometheus: `delivered`, `retried` (retries scheduled) and `failed` (dead
letters) as attributes, and `on_count(name)` called on each increment.

HTTP is the standard library's (`urllib.request`), with redirects refused (a redirected
POST may silently become a GET) and proxies taken from the environment as usual.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from schemas.alerting import WebhookTarget
from stream_processors.friction.alerts.core.bodies import (
    IDEMPOTENCY_HEADER,
    Page,
    idempotency_key,
    render,
)
from stream_processors.friction.alerts.core.incident_records import Incident
from stream_processors.friction.alerts.core.retry import (
    RetryPolicy,
    next_wait,
    parse_retry_after,
    verdict,
)

log = logging.getLogger(__name__)

USER_AGENT = "journeys-alerts/1"
_READ_MAX = 4096  # of an answer's body: enough for an error message, never a whole page


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A record that was not delivered, for the dead-letter topic."""

    endpoint: str  # scheme, host and port only
    format: str
    idempotency_key: str
    incident: dict[str, Any]
    reason: str
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "format": self.format,
            "idempotency_key": self.idempotency_key,
            "incident": self.incident,
            "reason": self.reason,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class _Job:
    target: WebhookTarget
    incident: Incident
    body: bytes
    key: str


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int | None  # None: no HTTP answer at all
    retry_after: str | None
    detail: str

    def describe(self) -> str:
        said = f": {self.detail}" if self.detail else ""
        return f"HTTP {self.status}{said}" if self.status is not None else self.detail


class _Lane:
    """One endpoint's queue and the thread that posts it, in order."""

    __slots__ = ("busy", "cond", "jobs", "thread")

    def __init__(self) -> None:
        self.jobs: deque[_Job] = deque()
        self.cond = threading.Condition()
        self.busy = False  # a job is being delivered (it has left `jobs`)
        self.thread: threading.Thread | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError: rejected, not followed


class WebhookSender:
    """Posts incident records to webhook targets in the background; see the module
    docstring."""

    def __init__(
        self,
        policy: RetryPolicy,
        on_dead_letter: Callable[[FailedDelivery], None],
        *,
        queue_size: int = 10_000,
        on_count: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.queue_size = queue_size
        self.delivered = 0
        self.retried = 0
        self.failed = 0
        self._on_dead_letter = on_dead_letter
        self._on_count = on_count
        self._rng = rng or random.Random()
        self._opener = urllib.request.build_opener(_NoRedirects)
        self._lock = threading.Lock()
        self._lanes: dict[str, _Lane] = {}
        self._closing = False
        self._abort = threading.Event()

    @property
    def queued(self) -> int:
        """Records waiting or being delivered, over all endpoints."""
        with self._lock:
            lanes = list(self._lanes.values())
        return sum(len(lane.jobs) + lane.busy for lane in lanes)

    def submit(self, target: WebhookTarget, incident: Incident, page: Page | None = None) -> bool:
        """Queue one record for one target (`page`: the teams it is addressed to and their
        links) and return at once; False when it could not be queued (queue full, or closed),
        in which case it has gone to the dead letters (the callback runs on this thread then:
        keep it to a non-blocking Kafka produce)."""
        body = render(target, incident, page)
        job = _Job(target, incident, body, idempotency_key(incident))
        lane = self._lane(target)
        if lane is None:
            self._dead(job, "the webhook sender is closed", 0)
            return False
        with lane.cond:
            if len(lane.jobs) + lane.busy < self.queue_size:
                lane.jobs.append(job)
                lane.cond.notify()
                return True
        self._dead(job, f"queue full ({self.queue_size} records for the endpoint)", 0)
        return False

    def close(self, timeout: float) -> int:
        """Stop taking records and deliver what is queued, for at most `timeout` seconds.
        Then what is still queued goes to the dead letters (returned: how many), and a
        record in flight gets one request timeout more to finish or be dead-lettered."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
            lanes = list(self._lanes.values())
        for lane in lanes:
            with lane.cond:
                lane.cond.notify_all()
        for lane in lanes:
            if lane.thread is not None:
                lane.thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [lane for lane in lanes if lane.thread is not None and lane.thread.is_alive()]
        if not stuck:
            return 0
        self._abort.set()  # a delivery waiting to retry gives up now
        left = 0
        for lane in stuck:
            with lane.cond:
                jobs = list(lane.jobs)
                lane.jobs.clear()
            for job in jobs:
                self._dead(job, "not delivered before shutdown", 0)
            left += len(jobs)
        for lane in stuck:
            assert lane.thread is not None
            lane.thread.join(self.policy.timeout + 1.0)
        return left

    # -- the lanes ----------------------------------------------------------------------------

    def _lane(self, target: WebhookTarget) -> _Lane | None:
        with self._lock:
            if self._closing:
                return None
            lane = self._lanes.get(target.endpoint)
            if lane is None:
                lane = self._lanes[target.endpoint] = _Lane()
                lane.thread = threading.Thread(
                    target=self._run,
                    args=(lane,),
                    name=f"webhook {target.redacted}",
                    daemon=True,  # a receiver that never answers must not hold the process
                )
                lane.thread.start()
            return lane

    def _run(self, lane: _Lane) -> None:
        while True:
            with lane.cond:
                while not lane.jobs and not self._closing:
                    lane.cond.wait()
                if not lane.jobs or self._abort.is_set():
                    return
                job = lane.jobs.popleft()
                lane.busy = True
            try:
                self._deliver(job)
            except Exception as exc:  # a bug here must not end the lane silently
                log.exception("webhook delivery failed unexpectedly")
                self._dead(job, f"internal error: {exc!r}", 0)
            finally:
                with lane.cond:
                    lane.busy = False

    def _deliver(self, job: _Job) -> None:
        started = time.monotonic()
        attempts = 0
        while True:
            answer = self._post(job)
            attempts += 1
            outcome = verdict(answer.status)
            if outcome == "delivered":
                self._count("delivered")
                return
            if outcome == "reject":
                self._dead(job, f"{answer.describe()} (not retried)", attempts)
                return
            elapsed = time.monotonic() - started
            wait = next_wait(
                self.policy,
                attempts=attempts,
                elapsed=elapsed,
                draw=self._rng.random(),
                retry_after=parse_retry_after(answer.retry_after, datetime.now(UTC)),
            )
            if wait is None:
                reason = f"gave up after {attempts} attempts in {elapsed:.1f}s"
                self._dead(job, f"{reason}; last: {answer.describe()}", attempts)
                return
            self._count("retried")
            if self._abort.wait(wait):
                self._dead(job, f"shut down while retrying; last: {answer.describe()}", attempts)
                return

    def _post(self, job: _Job) -> _Answer:
        request = urllib.request.Request(
            job.target.endpoint,
            data=job.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                IDEMPOTENCY_HEADER: job.key,
                "User-Agent": USER_AGENT,
            },
        )
        try:
            with self._opener.open(request, timeout=self.policy.timeout) as response:
                response.read(_READ_MAX)
                return _Answer(response.status, None, "")
        except urllib.error.HTTPError as exc:
            with exc:
                detail = _excerpt(exc)
            return _Answer(exc.code, exc.headers.get("Retry-After"), detail)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            return _Answer(None, None, f"no answer: {reason}")

    # -- outcomes -----------------------------------------------------------------------------

    def _dead(self, job: _Job, reason: str, attempts: int) -> None:
        self._count("failed")
        failed = FailedDelivery(
            endpoint=job.target.redacted,
            format=job.target.format,
            idempotency_key=job.key,
            incident=job.incident.to_dict(),
            reason=reason,
            attempts=attempts,
        )
        log.warning(
            "webhook delivery failed",
            extra={"endpoint": failed.endpoint, "key": job.key, "reason": reason},
        )
        try:
            self._on_dead_letter(failed)
        except Exception:  # the caller's problem, but it must not stop the other records
            log.exception("the dead-letter callback failed", extra={"key": job.key})

    def _count(self, name: Literal["delivered", "retried", "failed"]) -> None:
        with self._lock:
            if name == "delivered":
                self.delivered += 1
            elif name == "retried":
                self.retried += 1
            else:
                self.failed += 1
        if self._on_count is not None:
            self._on_count(name)


def _excerpt(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(_READ_MAX).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException, AttributeError):
        return ""
    return " ".join(text.split())[:200]
