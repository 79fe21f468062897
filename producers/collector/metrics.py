"""Prometheus metrics of the collector, served by the admin listener at GET /metrics.

With several worker processes (`journeys collector --workers N`) each writes its values to
files in PROMETHEUS_MULTIPROC_DIR, set by the parent before the workers start (prometheus
client's multiprocess mode), and any worker's /metrics adds them all up.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# prometheus_client leaves this constructor untyped.
_sum_of_workers: Callable[[CollectorRegistry], object] = multiprocess.MultiProcessCollector

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
ACKED = Counter(
    "journeys_collector_acked_total",
    "Records the collector sent that Kafka acknowledged: events on raw, dead letters",
    ["kind"],
)
NOT_ACKED = Counter(
    "journeys_collector_not_acked_total",
    "Records the collector sent that Kafka refused or did not acknowledge in time",
    ["kind"],
)
CONNECTIONS = Gauge(
    "journeys_collector_connections",
    "Connections open on the ingestion port",
    multiprocess_mode="livesum",
)
REFUSED_CONNECTIONS = Counter(
    "journeys_collector_connections_refused_total",
    "Connections closed at once because max_connections were open",
)
TIMEOUTS = Counter(
    "journeys_collector_request_timeouts_total",
    "Requests whose body did not arrive within request_timeout_seconds (answered 408)",
)


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type: this process's, or every worker's summed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _sum_of_workers(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
