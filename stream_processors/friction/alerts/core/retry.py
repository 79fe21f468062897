"""When to try a webhook delivery again, and when to give up: pure, for `webhooks.py`.

- **Which answers are retried.** No answer (refused, reset, timed out) and 5xx: the
  receiver may be back soon. 408 (request timeout), 425 (too early) and 429 (too many
  requests) say "later" in so many words; 429 and 503 may carry `Retry-After`, which is
  honoured (as a floor under the backoff). Any other 4xx says the request itself is wrong
  (a bad URL, a revoked token, a body it refuses): sending it again cannot help, so it goes
  to the dead letters at once. 3xx too: redirects are not followed (a POST must not turn
  into a GET on the way), so a moved endpoint is fixed in the routing file.
- **Backoff.** Wait `base * 2**(n-1)` before retry n, capped at `max_delay`, each wait
  shortened by up to `jitter` of itself at random, so receivers coming back are not hit by
  every sender at the same instant.
- **Bounds.** At most `max_attempts` attempts, and no wait that would end after
  `max_elapsed` from the first attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from schemas.alerting import WebhookSettings

Verdict = Literal["delivered", "retry", "reject"]
_RETRIED_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    max_elapsed: float = 300.0  # seconds from the first attempt
    base_delay: float = 0.5
    max_delay: float = 60.0
    jitter: float = 0.5  # share of each wait that is random
    timeout: float = 5.0  # per request

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or not 0.0 <= self.jitter <= 1.0:
            raise ValueError("max_attempts must be at least 1 and jitter within 0..1")
        if min(self.max_elapsed, self.base_delay, self.max_delay, self.timeout) <= 0:
            raise ValueError("times must be positive")

    @classmethod
    def of(cls, settings: WebhookSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            max_elapsed=settings.max_elapsed_seconds,
            base_delay=settings.base_delay_seconds,
            max_delay=settings.max_delay_seconds,
            jitter=settings.jitter,
            timeout=settings.timeout_seconds,
        )


def verdict(status: int | None) -> Verdict:
    """What an answer means; None is no answer at all."""
    if status is None:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    if status >= 500 or status in _RETRIED_4XX:
        return "retry"
    return "reject"


def backoff_delay(policy: RetryPolicy, retry: int, draw: float) -> float:
    """The wait before retry number `retry` (1 is the first retry); `draw` is uniform in
    [0, 1) and takes up to `jitter` of the wait away."""
    exponent = min(retry - 1, 62)  # 2**62 seconds is past any cap; keeps the float finite
    full = min(policy.max_delay, policy.base_delay * 2.0**exponent)
    return full * (1.0 - policy.jitter * draw)


def next_wait(
    policy: RetryPolicy,
    *,
    attempts: int,
    elapsed: float,
    draw: float,
    retry_after: float | None = None,
) -> float | None:
    """How long to wait before the next attempt after `attempts` failed ones, `elapsed`
    seconds after the first began; None to give up."""
    if attempts >= policy.max_attempts:
        return None
    wait = backoff_delay(policy, attempts, draw)
    if retry_after is not None:
        wait = max(wait, retry_after)
    if elapsed + wait > policy.max_elapsed:
        return None
    return wait


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now`: a number of seconds or an HTTP date; None when
    absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
