"""Prometheus metrics of the HTTP interface, served with the rest of the process's (the sink's
included) at GET /metrics on the interface's own port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

QUERIES = Counter(
    "journeys_clickhouse_http_queries_total",
    "Requests answered by the ClickHouse HTTP interface, by kind (query, insert) and status",
    ["kind", "status"],
)
SECONDS = Histogram(
    "journeys_clickhouse_http_query_seconds",
    "Time from a request's body being read to its answer being ready, by kind",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
RUNNING = Gauge(
    "journeys_clickhouse_http_queries_running", "Requests being run on the engine right now"
)
