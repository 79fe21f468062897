"""What a run left in ClickHouse, reduced to what must not depend on faults: the touchpoint
counts (plain, distinct, with FINAL), each event's person, journey outcomes, standing
drop-offs and alerts; and the differences between a run and the fault-free reference."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

Outcome = tuple[str, str, tuple[str, ...], str]


@dataclass(frozen=True)
class Snapshot:
    rows: int  # count() FROM touchpoints
    distinct: int  # uniqExact(event_id)
    final: int  # count() FROM touchpoints FINAL
    distinct_final: int
    persons: dict[str, str]  # event id -> its person after every merge
    outcomes: Counter[Outcome]  # (person, definition, stages reached, status)
    dropoffs: Counter[tuple[str, str, str, int]]  # (person, definition, stage, dropped at)
    alerts: Counter[tuple[str, str, str]]  # (incident, kind, status)

    @property
    def counted(self) -> int:
        return self.rows


def snapshot(ch: Client) -> Snapshot:
    rows, distinct = ch.query("SELECT count(), uniqExact(event_id) FROM touchpoints").result_rows[0]
    final, distinct_final = ch.query(
        "SELECT count(), uniqExact(event_id) FROM touchpoints FINAL"
    ).result_rows[0]
    persons = {
        str(e): str(p)
        for e, p in ch.query(
            "SELECT event_id, latest_person_id FROM touchpoints_latest"
        ).result_rows
    }
    outcomes = Counter(
        (str(p), str(d), tuple(s), str(st))
        for p, d, s, st in ch.query(
            "SELECT latest_person_id, definition_id, stages.1, status FROM journeys_latest "
            "WHERE status != 'merged'"
        ).result_rows
    )
    dropoffs = Counter(
        (str(p), str(d), str(s), int(at))
        for p, d, s, at in ch.query(
            "SELECT j.latest_person_id, d.definition_id, d.stage, "
            "toUnixTimestamp64Milli(d.dropped_at) FROM dropoffs_standing AS d "
            "INNER JOIN journeys_latest AS j USING (journey_id)"
        ).result_rows
    )
    alerts = Counter(
        (str(i), str(k), str(s))
        for i, k, s in ch.query("SELECT incident_id, kind, status FROM alerts FINAL").result_rows
    )
    return Snapshot(
        int(rows),
        int(distinct),
        int(final),
        int(distinct_final),
        persons,
        outcomes,
        dropoffs,
        alerts,
    )


def differences(got: Snapshot, want: Snapshot) -> dict[str, int]:
    """How many items differ, per kind (only kinds that differ)."""
    persons = sum(
        1
        for e in want.persons.keys() | got.persons.keys()
        if got.persons.get(e) != want.persons.get(e)
    )
    found = {
        "persons": persons,
        "journeys": _counter_diff(got.outcomes, want.outcomes),
        "drop-offs": _counter_diff(got.dropoffs, want.dropoffs),
        "alerts": _counter_diff(got.alerts, want.alerts),
    }
    return {k: v for k, v in found.items() if v}


def _counter_diff(got: Counter[Any], want: Counter[Any]) -> int:
    return sum((got - want).values()) + sum((want - got).values())
