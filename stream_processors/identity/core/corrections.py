"""Corrections: what changed between two decisions of the same identifiers, as records a
downstream stage can apply (move state between persons, retract refusals).

Every identifier's person before and after is compared. An old person whose identifiers all
went to one other person is merged into it (`MergeRecord`, rule `correction`); an old person
whose identifiers spread over several persons is split, and each part that leaves it is a
`MoveRecord`. Refusals are compared by pair: gone ones are retracted, new or changed ones sent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

from stream_processors.identity.core.records import MergeRecord, MoveRecord, RefusalRecord


def person_changes(
    before: Mapping[str, str], after: Mapping[str, str], event_id: str, event_time: datetime
) -> tuple[list[MergeRecord], list[MoveRecord]]:
    """Merge and move records turning `before` (key -> person id) into `after`."""
    spread: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for key, old in before.items():
        spread[old][after[key]].append(key)
    absorbed: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    moves: list[MoveRecord] = []
    for old, targets in sorted(spread.items()):
        if len(targets) == 1:
            new, keys = next(iter(targets.items()))
            if new != old:
                absorbed[new].append((old, keys))
            continue
        for new, keys in sorted(targets.items()):
            if new != old:
                moves.append(MoveRecord(event_id, event_time, tuple(sorted(keys)), old, new))
    merges = [
        _merge(new, parts, new in spread, event_id, event_time)
        for new, parts in sorted(absorbed.items())
    ]
    return merges, moves


def joined_changes(
    before: Mapping[str, str], pid: str, event_id: str, event_time: datetime
) -> list[MergeRecord]:
    """`person_changes(before, dict.fromkeys(before, pid), ...)`, when every identifier ends in
    person `pid`: one merge of the other persons into it (or none), and never a move."""
    parts = [(old, [key]) for key, old in before.items() if old != pid]
    if not parts:
        return []
    return [_merge(pid, parts, pid in before.values(), event_id, event_time)]


def _merge(
    new: str,
    parts: list[tuple[str, list[str]]],
    existed: bool,
    event_id: str,
    event_time: datetime,
) -> MergeRecord:
    olds = sorted({old for old, _ in parts} | ({new} if existed else set()))
    keys = sorted(key for _, part in parts for key in part)
    return MergeRecord("correction", event_id, event_time, tuple(keys), tuple(olds), new)


def refusal_changes(
    before: Mapping[tuple[str, str], RefusalRecord],
    after: Mapping[tuple[str, str], RefusalRecord],
) -> list[RefusalRecord]:
    """Retractions of refusals no longer made, then refusals that are new or changed."""
    out: list[RefusalRecord] = []
    for pair, old in sorted(before.items()):
        new = after.get(pair)
        # The same pair, rule and event is the same refusal (the same `record_id`).
        if new is None or (new.rule, new.event_id) != (old.rule, old.event_id):
            out.append(_retracted(old))
    for pair, new in sorted(after.items()):
        if before.get(pair) != new:
            out.append(new)
    return out


def _retracted(record: RefusalRecord) -> RefusalRecord:
    return RefusalRecord(
        record.rule,
        record.event_id,
        record.event_time,
        record.identifiers,
        record.detail,
        retracted=True,
    )
