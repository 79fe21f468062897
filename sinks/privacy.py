"""The sink's suppression of erased persons: rows that name an erased person (their person id
or one of their identifiers, as keyed hashes in `privacy_suppressions`) are not inserted.

This is the last line behind the ingest stage's gate: it catches what was already past ingest
when the erasure ran (outputs in flight, a journey closed from state, an alert whose examples
the friction detector gathered before) and rows replayed from `dlq.sink`. The list is re-read
from ClickHouse at most every `privacy.suppression_refresh_seconds`; while it is empty nothing
is parsed.
"""

from __future__ import annotations

import logging

import orjson
from clickhouse_connect.driver.client import Client
from prometheus_client import Counter

from producers.pii import hash_with
from schemas.privacy import SuppressionList
from schemas.settings import Settings

log = logging.getLogger(__name__)

DROPPED = Counter(
    "journeys_sink_erased_rows_total",
    "Rows (and alerts' example journeys) of erased persons not inserted",
    ["table"],
)


class SinkSuppression:
    """Filters JSON row arrays against the suppression list it keeps fresh."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.list = self._empty()
        self._read_at: float | None = None

    def _empty(self) -> SuppressionList:
        pii = self.settings.pii

        def hasher(key_id: str, value: str) -> str:
            return hash_with(pii, key_id, value) if key_id in pii.keys else ""

        return SuppressionList(hasher)

    def refresh(self, client: Client, now: float) -> None:
        """Re-read the list if it is older than the refresh interval (`now`: monotonic)."""
        every = self.settings.privacy.suppression_refresh_seconds
        if self._read_at is not None and now - self._read_at < every:
            return
        # The sink migrated the schema at start, so the table is there. A failed read leaves
        # the time unset: the next insert reads again.
        rows = client.query("SELECT DISTINCT hash FROM privacy_suppressions").result_rows
        self._read_at = now
        fresh = self._empty()
        for (hashed,) in rows:
            fresh.add(hashed)
        self.list = fresh

    def filter(self, table: str, rows_json: bytes) -> tuple[bytes, int]:
        """`rows_json` (a JSON array) without the rows of erased persons, and without their
        example journeys in alerts; how many rows and examples went."""
        if not len(self.list):
            return rows_json, 0
        try:
            rows = orjson.loads(rows_json)
        except orjson.JSONDecodeError:
            return rows_json, 0  # ClickHouse refuses it, as it would have
        if not isinstance(rows, list):
            return rows_json, 0
        kept, dropped = [], 0
        for row in rows:
            if isinstance(row, dict) and self.list.holds_row(row):
                dropped += 1
                continue
            examples = row.get("examples") if isinstance(row, dict) else None
            if isinstance(examples, list) and examples:
                others = [e for e in examples if not _theirs(self.list, e)]
                dropped += len(examples) - len(others)
                row["examples"] = others
            kept.append(row)
        if not dropped:
            return rows_json, 0
        DROPPED.labels(table).inc(dropped)
        log.info("%s: %d rows or examples of erased persons not inserted", table, dropped)
        return orjson.dumps(kept), dropped


def _theirs(suppressed: SuppressionList, example: object) -> bool:
    return isinstance(example, dict) and suppressed.holds_row(example)
