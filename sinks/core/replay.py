"""What a replay of the sink's dead letters may commit, and what it reports.

A replay inserts each record's rows with the record's own token, so replaying twice writes
once. A record ClickHouse still refuses stays: the replay group's offset stops at it (it is
left uncommitted, not re-published), and the next replay starts there again. Records after
it that went in are replayed again then too, which their tokens make harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["inserted", "refused", "unreadable"]


@dataclass(frozen=True, slots=True)
class Replayed:
    """One dead-letter record's fate: where it sits and what became of it."""

    partition: int
    offset: int
    outcome: Outcome
    rows: int = 0
    table: str = ""


def commit_offsets(replayed: Iterable[Replayed]) -> dict[int, int]:
    """Per partition, the offset the replay group commits: past every record up to the
    first one still refused (that one stays), or past the last record read.

    An unreadable record (not a sink dead letter at all) is passed over: nothing could ever
    insert it, and it must not block the ones behind it. `replayed` is in offset order per
    partition."""
    offsets: dict[int, int] = {}
    blocked: set[int] = set()
    for r in replayed:
        if r.partition in blocked:
            continue
        if r.outcome == "refused":
            offsets[r.partition] = r.offset
            blocked.add(r.partition)
        else:
            offsets[r.partition] = r.offset + 1
    return offsets


@dataclass
class ReplayReport:
    """Counts for people: records by outcome, rows inserted, tables that refused. (Rows
    ClickHouse already had count too: its answer does not tell them apart.)"""

    records: int = 0
    inserted: int = 0
    refused: int = 0
    unreadable: int = 0
    rows: int = 0
    refused_tables: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, replayed: Iterable[Replayed]) -> ReplayReport:
        report = cls()
        for r in replayed:
            report.records += 1
            report.rows += r.rows
            if r.outcome == "inserted":
                report.inserted += 1
            elif r.outcome == "refused":
                report.refused += 1
                report.refused_tables[r.table] = report.refused_tables.get(r.table, 0) + 1
            else:
                report.unreadable += 1
        return report

    def lines(self) -> list[str]:
        lines = [
            f"replayed {self.records:,} dead letters: {self.inserted:,} inserted "
            f"({self.rows:,} rows; ClickHouse drops rows it already has by their token), "
            f"{self.refused:,} still refused, {self.unreadable:,} unreadable"
        ]
        lines.extend(
            f"  still refused by {table}: {n:,} (left for the next replay)"
            for table, n in sorted(self.refused_tables.items())
        )
        return lines
