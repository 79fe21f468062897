"""Identity merges for journeys: one person's tracks, sessions and buffered events join
another's. Tracks of the same definition (and hold value) are folded together from the union
of their hits, so the result is what the merged person's events would have given in the
first place: the instance whose start came first keeps going, the other is `merged` into it.
Events stitched to the old person id before the merge was known keep arriving for a while:
`Aliases` sends them on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from operator import itemgetter
from typing import Any

from stream_processors.journeys.core.deadlines import NEVER
from stream_processors.journeys.core.lifecycle import seal
from stream_processors.journeys.core.outputs import Output, journey_update
from stream_processors.journeys.core.refold import reconcile, refold
from stream_processors.journeys.core.sessions import Sessions
from stream_processors.journeys.core.state import Person, Track

_TIME_ID = itemgetter(0, 1)


def absorb(
    target: Person,
    source: Person,
    watermark_ms: int,
    sessions: Sessions,
    out: list[Output],
    *,
    tolerance_ms: int,
    merged_ms: int | None = None,
) -> list[Track]:
    """Move everything of `source` into `target`; return the tracks that changed.

    Both sides' tracks are sealed at the watermark first, so the merge takes only what is
    within the late tolerance, whenever the tracks were last woken: a track of hits that
    started no journey (a call with no help page before it) is filed with the deadline wheel
    only when restored from a snapshot, so without this a restart decided whether its hits,
    however old, joined the other person's journey. The hits kept are those within the
    tolerance of the merge's own time (`merged_ms`, the link's event time) when it is later
    than the watermark: how far this partition's time had moved when the merge was read
    depends on the order its inputs were read in, which a restart upstream changes."""
    changed: list[Track] = []
    for track in source.tracks:
        seal(track, watermark_ms, tolerance_ms, merged_ms)
        if not (track.instances or track.hits):
            continue  # nothing left that a late event could still change
        track.person = target.id
        mine = next(
            (t for t in target.tracks if t.definition is track.definition and t.hold == track.hold),
            None,
        )
        if mine is not None:
            seal(mine, watermark_ms, tolerance_ms, merged_ms)
        if mine is None:
            target.tracks = (*target.tracks, track)
            for inst in track.instances:  # same journeys, new person: a new version each
                inst.version += 1
                out.append(journey_update(track, inst))
            changed.append(track)
        else:
            _join(mine, track, watermark_ms, out)
            changed.append(mine)
    sessions.absorb(target, source, out)
    if source.pending:
        target.pending = [*target.buffered(), *source.buffered()]
    source.tracks, source.sessions, source.pending = (), None, None
    return changed


def _join(mine: Track, other: Track, watermark_ms: int, out: list[Output]) -> None:
    known = {hit[1] for hit in mine.hits}
    hits = [*mine.hits, *(h for h in other.hits if h[1] not in known)]
    mine.hits = tuple(sorted(hits, key=_TIME_ID))
    mine.floor_ms = min(mine.floor_ms, other.floor_ms)
    mine.instances = tuple(sorted([*mine.instances, *other.instances], key=lambda i: i.start_ms))
    if other.ghosts:
        mine.ghosts = {**(mine.ghosts or {}), **other.ghosts}
    reconcile(mine, refold(mine, watermark_ms), None, reason="merged", out=out, always=True)


class Aliases:
    """Person ids merged into others: old id -> new id, for `ttl_ms` of event time after the
    merge (counted from the first watermark if it came before any)."""

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms
        self._to: dict[str, tuple[str, int]] = {}  # old -> (new, forgotten at)
        self._order: deque[tuple[int, str]] = deque()
        self._unset: list[str] = []

    def __bool__(self) -> bool:
        return bool(self._to)

    def add(self, old: str, new: str, watermark_ms: int) -> None:
        if watermark_ms > -NEVER:
            self._set(old, new, watermark_ms + self.ttl_ms)
        else:
            self._to[old] = (new, NEVER)
            self._unset.append(old)

    def _set(self, old: str, new: str, until: int) -> None:
        self._to[old] = (new, until)
        self._order.append((until, old))

    def resolve(self, pid: str) -> str:
        """The person `pid` now is (following chains of merges)."""
        for _ in range(16):  # a cycle cannot form, but stay bounded
            found = self._to.get(pid)
            if found is None:
                return pid
            pid = found[0]
        return pid

    def expire(self, watermark_ms: int) -> Iterator[str]:
        """Forget aliases whose time passed; yield their old ids (their state changed)."""
        for old in self._unset:
            if old in self._to:
                self._set(old, self._to[old][0], watermark_ms + self.ttl_ms)
        self._unset.clear()
        order = self._order
        while order and order[0][0] < watermark_ms:
            until, old = order.popleft()
            if self._to.get(old, ("", -1))[1] == until:
                del self._to[old]
                yield old

    def olds(self) -> list[str]:
        return list(self._to)

    def forget(self, old: str) -> None:
        """Drop an alias before its time (an erased person); `expire` skips its entry."""
        self._to.pop(old, None)

    def snapshot(self, old: str) -> dict[str, Any] | None:
        found = self._to.get(old)
        return {"v": 1, "moved_to": found[0], "until": found[1]} if found else None

    def restore(self, old: str, data: Mapping[str, Any]) -> None:
        self._set(old, data["moved_to"], data["until"])
