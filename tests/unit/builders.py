"""Small builders of touchpoint payloads shared by the unit and property tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def event_id(n: int) -> str:
    """A stable, valid event id for a small integer."""
    return str(uuid.UUID(int=n, version=4))


def touchpoint(n: int = 1, /, **overrides: Any) -> dict[str, Any]:
    """A valid raw touchpoint (as a producer writes it) with `overrides` applied."""
    event: dict[str, Any] = {
        "event_id": event_id(n),
        "channel": "web",
        "source": "web-shop",
        "event_type": "page_view",
        "occurred_at": "2025-03-01T11:59:00+00:00",
        "identity": {"anonymous_id": f"anon-{n}"},
        "properties": {"n": n},
    }
    event.update(overrides)
    return event
