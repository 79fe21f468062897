"""What a journeys stage's table holds after a transaction, for tests of its bookkeeping."""

from __future__ import annotations

from typing import Any

from stream_processors.journeys.handoffs import Handoffs


def written(h: Handoffs, into: dict[str, Any]) -> dict[str, Any]:
    """Apply the touched entries to a table's data, as the stage does per transaction."""
    for key, value in h.take_entries():
        if value is None:
            into.pop(key, None)
        else:
            into[key] = value
    return into
