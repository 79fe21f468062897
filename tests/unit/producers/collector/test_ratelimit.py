"""The per-key token bucket, driven by an injected clock."""

from __future__ import annotations

import pytest

from producers.collector.ratelimit import RateLimiter, TokenBucket


def test_a_full_bucket_admits_its_burst_then_refuses() -> None:
    limiter = RateLimiter(rate_per_second=100, burst_seconds=2)  # 200 tokens
    assert limiter.take("k", 150, now=0.0) == 0.0
    assert limiter.take("k", 50, now=0.0) == 0.0
    assert limiter.take("k", 10, now=0.0) == pytest.approx(0.1)


def test_tokens_refill_with_time_up_to_the_capacity() -> None:
    limiter = RateLimiter(100, 1)
    limiter.take("k", 100, now=0.0)
    assert limiter.take("k", 50, now=0.25) > 0  # 25 tokens back
    assert limiter.take("k", 50, now=0.5) == 0.0
    assert limiter.take("k", 100, now=100.0) == 0.0  # refilled to 100, not 10,000
    assert limiter.take("k", 1, now=100.0) > 0


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(10, 1)
    assert limiter.take("a", 10, now=0.0) == 0.0
    assert limiter.take("a", 1, now=0.0) > 0
    assert limiter.take("b", 10, now=0.0) == 0.0


def test_a_request_larger_than_the_bucket_passes_when_full_and_leaves_debt() -> None:
    bucket = TokenBucket(rate=10, capacity=10, tokens=10, updated=0.0)
    assert bucket.take(25, now=0.0) == 0.0
    assert bucket.tokens == -15
    assert bucket.take(1, now=1.0) == pytest.approx(0.6)  # -5 + 0.6 s * 10 = 1
    assert bucket.take(25, now=2.5) == 0.0  # full again


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=10, capacity=10, tokens=0, updated=5.0)
    assert bucket.take(1, now=4.0) == pytest.approx(0.1)
    assert bucket.take(1, now=5.2) == 0.0
