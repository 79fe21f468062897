"""The `journey_definitions` table: the journey definitions the pipeline runs, one row per
stage, so SQL takes stage order and time limits from it instead of spelling them out.

The definitions are TOML files (`schemas/definitions.py`), not events, so no topic carries
them: whoever applies the schema with the deployment's settings (`journeys db migrate`, the
sink on start) records them with `record_definitions`. Every version ever recorded stays, so
journeys written under an older version still find their stages (join on `definition_id`
and `version = definition_version`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from schemas.definitions import DefinitionSpec, load_definitions

TABLE = "journey_definitions"

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE}
(
    definition_id LowCardinality(String) COMMENT 'the definition''s id (journeys.definition_id)',
    version UInt32 COMMENT 'the definition''s version (journeys.definition_version)',
    stage LowCardinality(String) COMMENT 'a stage of the definition',
    stage_index UInt8 COMMENT 'position on the ordered path from 1; failure stages after it',
    entry Bool COMMENT 'a journey may start at this stage',
    success Bool COMMENT 'reaching it converts the journey',
    failure Bool COMMENT 'reaching it ends the journey as dropped off at once (off the path)',
    time_limit_seconds Nullable(UInt64) COMMENT 'time allowed here before a drop-off (seconds)',
    channels Array(LowCardinality(String)) COMMENT 'channels its match rules name (empty: any)',
    event_types Array(String) COMMENT 'event types its match rules name',
    lifetime_seconds Nullable(UInt64) COMMENT 'the definition''s overall lifetime, if any',
    reopen_window_seconds Nullable(UInt64) COMMENT 'how soon after a drop-off progress reopens',
    hold_constant Nullable(String) COMMENT 'the property that must stay the same, if any',
    description String COMMENT 'the definition''s description'
)
ENGINE = ReplacingMergeTree
ORDER BY (definition_id, version, stage)
COMMENT 'The configured journey definitions, one row per version and stage (read with FINAL)'
"""


def definition_rows(specs: Iterable[DefinitionSpec]) -> list[dict[str, Any]]:
    """The table's rows for these definitions: the ordered path first, then failure stages."""
    rows = []
    for spec in specs:
        stages = spec.ordered + [s for s in spec.stages if s.failure]
        for index, stage in enumerate(stages, start=1):
            rows.append(
                {
                    "definition_id": spec.id,
                    "version": spec.version,
                    "stage": stage.name,
                    "stage_index": index,
                    "entry": stage.name in spec.entries,
                    "success": stage.success,
                    "failure": stage.failure,
                    "time_limit_seconds": _seconds(stage.time_limit),
                    "channels": sorted({c.value for rule in stage.match for c in rule.channels}),
                    "event_types": sorted({t for rule in stage.match for t in rule.event_types}),
                    "lifetime_seconds": _seconds(spec.lifetime),
                    "reopen_window_seconds": _seconds(spec.reopen_window),
                    "hold_constant": spec.hold_constant,
                    "description": spec.description,
                }
            )
    return rows


def _seconds(delta: timedelta | None) -> int | None:
    return None if delta is None else int(delta.total_seconds())


def record_definitions(client: Client, files: Iterable[Path]) -> int:
    """Write the definitions of `files` into the table (creating it if missing); returns the
    rows written. Re-recording the same versions replaces their rows."""
    rows = definition_rows(load_definitions(files))
    client.command(DDL.strip())
    if rows:
        columns = list(rows[0])
        client.insert(TABLE, [[row[c] for c in columns] for row in rows], column_names=columns)
    return len(rows)
