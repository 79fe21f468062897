"""Small builders shared by the identity-stitching unit and property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stream_processors.identity.core.graph import IdentityGraph
from stream_processors.identity.core.records import Resolution, person_id

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """T0 plus `minutes`."""
    return T0 + timedelta(minutes=minutes)


def pid(key: str) -> str:
    """The person id named by identifier key `key`."""
    return person_id(key)


def see(graph: IdentityGraph, event_id: str, minutes: float, **identifiers: str) -> Resolution:
    """Observe one event given as keyword identifiers."""
    return graph.observe(identifiers, at(minutes), event_id)
