"""Row checks ClickHouse applies to every insert into the tables the stages feed.

The sink passes each message's rows to ClickHouse as JSON without reading them (that is what
keeps it fast), and JSONEachRow fills a missing field with its type's default. A record on a
stage topic that is not a row of its table (written by hand, or by a bug) would otherwise be
stored as a row of defaults: a touchpoint with the zero UUID, no channel and a 1970 time,
counted by every query. With a `CHECK` on the fields that make a row usable, ClickHouse refuses
such an insert (code 469), and the sink's refused-batch path isolates the record and sends it
to `dlq.sink` with the reason while the batch's other rows are written.

Only ids, channels and event types are checked: ClickHouse's error repeats the checked
columns' values, and the dead letter keeps its text.
"""

from __future__ import annotations

_ZERO_UUID = "toUUID('00000000-0000-0000-0000-000000000000')"

# table -> (constraint name, expression)
ROW_CHECKS: dict[str, tuple[str, str]] = {
    "touchpoints": (
        "usable_touchpoint",
        f"event_id != {_ZERO_UUID} AND channel != '' AND event_type != ''",
    ),
    "identity_links": ("usable_link", f"event_id != {_ZERO_UUID}"),
    "identity_overrides": ("usable_override", "identifier != ''"),
    "identity_audit": ("usable_record", f"record_id != {_ZERO_UUID}"),
    "journeys": ("usable_journey", "journey_id != ''"),
    "journey_transitions": ("usable_transition", "transition_id != ''"),
    "dropoffs": ("usable_dropoff", "dropoff_id != ''"),
    "journey_retractions": ("usable_retraction", "retraction_id != ''"),
    "sessions": ("usable_session", "session_id != ''"),
}


def row_checks() -> list[str]:
    """The statements that give each table its check; idempotent."""
    return [
        f"ALTER TABLE `{table}` ADD CONSTRAINT IF NOT EXISTS {name} CHECK {expression}"
        for table, (name, expression) in ROW_CHECKS.items()
    ]
