"""The ingest core with the row path turned off: every event goes through the model path.

`Ingest.process` tries the row path (`schemas.touchpoint_row`) first and hands an event to
`Ingest._model` (one `Touchpoint` validated and dumped by pydantic) when `_row` returns False.
Returning False for every row forces the model path, so the current row path can be compared
with the current model path on the same events: same fragments byte for byte, same rejections,
duplicates, watermark input and first-seen state.
"""

from __future__ import annotations

from schemas.touchpoint_row import TouchpointRow
from stream_processors.ingest.core.admission import Ingest, _Call


class ModelPathIngest(Ingest):
    """`Ingest` deciding every event on the model path."""

    def _row(self, row: TouchpointRow, call: _Call) -> bool:
        return False
