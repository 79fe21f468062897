"""Prometheus metrics of the collector, served on its own port at GET /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "journeys_collector_requests_total", "HTTP requests answered", ["route", "status"]
)
CALLS = Counter(
    "journeys_collector_calls_total", "Tracking calls received, by outcome", ["source", "outcome"]
)
REJECTED = Counter(
    "journeys_collector_rejected_total", "Tracking calls refused, by reason", ["reason"]
)
ACK_SECONDS = Histogram(
    "journeys_collector_ack_seconds",
    "From a request's events being queued to Kafka acknowledging all of them",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
