"""Per-write-key rate limits: a token bucket per key, measured in events.

Pure: the time (monotonic seconds) is an argument. A bucket holds up to `burst` tokens and
refills at `rate` per second; a request costs one token per event. A request larger than the
whole bucket is let through when the bucket is full and leaves it in debt, so a legal batch is
never refused forever.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, cost: float, now: float) -> float:
        """Take `cost` tokens if there are enough: 0.0 when admitted, else the seconds to wait
        until the request would be."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)
        needed = min(cost, self.capacity)
        if self.tokens >= needed:
            self.tokens -= cost
            return 0.0
        return (needed - self.tokens) / self.rate


class RateLimiter:
    """One bucket per key, created full on first use."""

    def __init__(self, rate_per_second: float, burst_seconds: float) -> None:
        self.rate = rate_per_second
        self.capacity = max(1.0, rate_per_second * burst_seconds)
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, cost: float, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.capacity, self.capacity, now)
        return bucket.take(cost, now)
