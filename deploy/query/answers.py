"""Answers as rows, put in the order people read them (stages in definition order) and given
the shares that need every row (a funnel's share of its first stage, of the stage before)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deploy.query.catalog import Catalog
from deploy.query.options import Step

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Answer:
    columns: list[str]
    rows: list[Row]

    def column(self, name: str) -> int:
        return self.columns.index(name)


def in_stage_order(answer: Answer, catalog: Catalog, first: Sequence[str] = ()) -> Answer:
    """Rows by definition, then the `first` columns, then stage in the definition's order,
    then the other columns."""
    d, s = answer.column("definition"), answer.column("stage")
    leading = [answer.column(c) for c in first]
    skip = {d, s, *leading}

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    def key(row: Row) -> tuple[Any, ...]:
        rest = tuple(text(v) for i, v in enumerate(row) if i not in skip)
        before = tuple(text(row[i]) for i in leading)
        return (row[d], before, catalog.position(row[d], row[s]), rest)

    return Answer(answer.columns, sorted(answer.rows, key=key))


def with_funnel_shares(answer: Answer, catalog: Catalog, by: Sequence[str]) -> Answer:
    """Adds `share_of_start` (journeys at this row / journeys at the funnel's first stage) and
    `from_previous` (/ journeys at the stage before), both within the same definition and
    breakdown (`by`); a `stage_channel` breakdown splits a stage, so its rows share one total."""
    within = [c for c in by if c != "stage_channel"]
    ordered = in_stage_order(answer, catalog, within)
    keys = [ordered.column(c) for c in ("definition", *within)]
    stage, journeys = ordered.column("stage"), ordered.column("journeys")
    totals: dict[Row, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in ordered.rows:
        totals[tuple(row[k] for k in keys)][row[stage]] += int(row[journeys])
    rows = []
    for row in ordered.rows:
        funnel = totals[tuple(row[k] for k in keys)]
        stages = list(funnel)  # in stage order: the rows were sorted
        at = stages.index(row[stage])
        previous = funnel[stages[at - 1]] if at else None
        rows.append(
            (*row, _share(row[journeys], funnel[stages[0]]), _share(row[journeys], previous))
        )
    return Answer([*ordered.columns, "share_of_start", "from_previous"], rows)


def _share(part: int, whole: int | None) -> float | None:
    return round(part / whole, 3) if whole else None


def adhoc_funnel(steps: Sequence[Step], levels: Sequence[tuple[int, int]]) -> Answer:
    """From (level, persons) counts of windowFunnel: persons who took each step (at least that
    far in order), with their share of the first step and of the step before."""
    reached = [sum(n for level, n in levels if level >= k) for k in range(1, len(steps) + 1)]
    rows = [
        (k, str(step), n, _share(n, reached[0]), _share(n, reached[k - 2]) if k > 1 else None)
        for k, (step, n) in enumerate(zip(steps, reached, strict=True), start=1)
    ]
    return Answer(["step", "event", "persons", "share_of_start", "from_previous"], rows)
