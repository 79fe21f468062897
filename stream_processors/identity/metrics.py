"""Prometheus metrics of the identity stage (served by its worker on its metrics port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

IDENTITY_MERGES = Counter(
    "journeys_identity_merges_total", "Persons joined by the identity authority", ["rule"]
)

IDENTITY_MOVES = Counter(
    "journeys_identity_moves_total", "Identifiers moved between persons by a late link"
)

IDENTITY_REFUSALS = Counter(
    "journeys_identity_refusals_total", "Links or identifiers refused, by guard", ["rule"]
)

IDENTITY_IDENTIFIERS = Gauge(
    "journeys_identity_graph_identifiers", "Identifiers in the authority's graph"
)

IDENTITY_LINKS = Gauge("journeys_identity_graph_links", "Identifier pairs in the authority's graph")

IDENTITY_REMAPPED = Gauge(
    "journeys_identity_remapped_identifiers",
    "Identifiers whose person is not the one they name (the published map)",
)

REPLICA_LAG = Histogram(
    "journeys_identity_replica_lag_seconds",
    "Wall time from the authority publishing a map update to a routing worker applying it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)

PROVISIONAL = Counter(
    "journeys_identity_link_events_total",
    "Events with several identifiers routed before the authority saw them (provisional person)",
)
