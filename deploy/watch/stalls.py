"""Which consumer groups are stalled: behind their input, with offsets that stopped moving.

Pure: it is handed each poll's positions and the time, and keeps, per partition, the last
committed offset and when it last moved or was caught up. A partition with lag whose offset
has not moved for `stall_after` seconds is stalled; a group is stalled while any of its
partitions is. A group merely idle (no lag) is never stalled, however long it stays so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Partition = tuple[str, str, int]  # group, topic, partition


@dataclass(frozen=True)
class Position:
    group: str
    topic: str
    partition: int
    committed: int  # the next offset the group will read; < 0: nothing committed yet
    end: int  # the last stable offset (committed data only)

    @property
    def lag(self) -> int:
        return max(self.end - max(self.committed, 0), 0)


@dataclass(frozen=True)
class GroupStatus:
    group: str
    lag: int
    stalled: bool
    stalled_for: float  # seconds the longest-stalled partition has not moved (0 when none)
    stalled_partitions: tuple[str, ...]  # `topic[partition]`


@dataclass
class _Seen:
    committed: int
    since: float  # when it last moved, or was caught up


@dataclass
class StallWatch:
    stall_after: float
    _seen: dict[Partition, _Seen] = field(default_factory=dict)

    def observe(self, positions: Iterable[Position], now: float) -> list[GroupStatus]:
        """Each group's status after this poll, groups in name order."""
        by_group: dict[str, list[tuple[Position, float]]] = {}
        for position in positions:
            key = (position.group, position.topic, position.partition)
            seen = self._seen.get(key)
            if seen is None or seen.committed != position.committed or position.lag == 0:
                seen = self._seen[key] = _Seen(position.committed, now)
            by_group.setdefault(position.group, []).append((position, now - seen.since))
        return [self._status(group, found) for group, found in sorted(by_group.items())]

    def _status(self, group: str, found: list[tuple[Position, float]]) -> GroupStatus:
        stalled = [
            (position, still)
            for position, still in found
            if position.lag > 0 and still >= self.stall_after
        ]
        return GroupStatus(
            group=group,
            lag=sum(position.lag for position, _ in found),
            stalled=bool(stalled),
            stalled_for=max((still for _, still in stalled), default=0.0),
            stalled_partitions=tuple(
                sorted(f"{position.topic}[{position.partition}]" for position, _ in stalled)
            ),
        )
