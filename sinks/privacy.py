"""The sink's suppression of erased persons: rows that name an erased person (their person id
or one of their identifiers, as keyed hashes in `privacy_suppressions`) are not inserted.

This is the last line behind the ingest stage's gate: it catches what was already past ingest
when the erasure ran (outputs in flight, a journey closed from state) and rows replayed from
`dlq.sink`. The list is re-read from ClickHouse at most every
`privacy.suppression_refresh_seconds`; while it is empty nothing is parsed.
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
    "journeys_sink_erased_rows_total", "Rows of erased persons not inserted", ["table"]
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
        self._read_at = now
        # The sink migrated the schema at start, so the table is there.
        rows = client.query("SELECT DISTINCT hash FROM privacy_suppressions").result_rows
        fresh = self._empty()
        for (hashed,) in rows:
            fresh.add(hashed)
        self.list = fresh

    def filter(self, table: str, rows_json: bytes) -> tuple[bytes, int]:
        """`rows_json` (a JSON array) without the rows of erased persons, and how many went."""
        if not len(self.list):
            return rows_json, 0
        rows = orjson.loads(rows_json)
        kept = [row for row in rows if not self.list.holds_row(row)]
        dropped = len(rows) - len(kept)
        if not dropped:
            return rows_json, 0
        DROPPED.labels(table).inc(dropped)
        log.info("%s: %d rows of erased persons not inserted", table, dropped)
        return orjson.dumps(kept), dropped
