"""Persons in transit between partitions of the journeys stage (docs/stages/journeys.md).

When the identity authority merges person `old` into `new` and the two live on different
partitions, `old`'s partition sends its journeys to `new`'s through `journey-handoff` and
forwards events still stamped `old` for the late tolerance; `new`'s partition holds its
event time short of the merge until the state has arrived. `Handoffs` is one partition's
bookkeeping of that,
`Outbox` the rows it sends. No I/O here: the stage produces what the outbox holds.

A merge takes effect at its own event time (the link's), not when it is read: under load
`identity-merges` (few, small records) is read far ahead of the `stitched` backlog, and a merge
applied when read took in events of the old person that, read in their place, it leaves apart
(older than the late tolerance at the link). The old person's partition still sends the state
at once, so nobody waits on another partition's time; the partition of the new person keeps
the old one apart, as a person of its own, until its time reaches the merge (`hold`, `due`).

State is one changelog key per entry, so no value grows with the number of merges (a broker
refuses a record over its size limit): a forwarded person -> [new person, forward until
(event ms)]; a person whose state is awaited -> [the earliest merge's event time (ms), or None]
(with how many times over, when more than once: `[ms, n]`); one whose state arrived before
its merge record -> how many times; a person held apart until its merge -> [new person, the
merge's event time (ms)].

A person can merge into the same one more than once (a late link splits it out again, and a
later one joins it back): each merge record sends its state once, and the records and the
states race, so each side counts.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.partitioning import partition_for

FORWARD = "\x00fwd\x1f"
AWAITED = "\x00await\x1f"
EARLY = "\x00early\x1f"
HELD = "\x00held\x1f"
PREFIXES = (FORWARD, AWAITED, EARLY, HELD)


@dataclass(slots=True)
class Handoffs:
    forward: dict[str, tuple[str, int]] = field(default_factory=dict)  # old -> (new, until)
    # Merged into ours, state not here yet -> the merge's event time (None: not known).
    awaiting: dict[str, int | None] = field(default_factory=dict)
    # Awaited more than once (merged in again before its state came): the times over, less one.
    awaited_again: dict[str, int] = field(default_factory=dict)
    early: dict[str, int] = field(default_factory=dict)  # state here, merge record not yet: times
    held: dict[str, tuple[str, int]] = field(default_factory=dict)  # old -> (new, merge ms)
    touched: set[str] = field(default_factory=set)  # keys to write in the next transaction
    # Who forwards to whom, and forwards by expiry: a merge or a moving watermark touches
    # only the entries concerned, not every alias of the partition.
    # Most persons have one forwarded to them: a set each was ~200 bytes per merge.
    _by_target: dict[str, str | set[str]] = field(default_factory=dict)
    _expiry: list[tuple[int, str]] = field(default_factory=list)
    _held_order: list[tuple[int, str, str]] = field(default_factory=list)  # a heap of `held`

    @classmethod
    def restore(cls, data: MutableMapping[str, Any]) -> Handoffs:
        """The entries in a partition's restored table data, taken out of it."""
        handoffs = cls()
        for key in [k for k in data if k.startswith(PREFIXES)]:
            value = data.pop(key)
            if key.startswith(FORWARD):
                handoffs._set_forward(key[len(FORWARD) :], value[0], value[1])
            elif key.startswith(HELD):
                handoffs._hold(key[len(HELD) :], value[0], int(value[1]))
            elif key.startswith(AWAITED):
                # Written as 1 before the merge's time was kept: unknown, so time stands.
                name = key[len(AWAITED) :]
                handoffs.awaiting[name] = value[0] if isinstance(value, list) else None
                if isinstance(value, list) and len(value) > 1 and value[1] > 1:
                    handoffs.awaited_again[name] = value[1] - 1
            else:
                handoffs.early[key[len(EARLY) :]] = int(value)  # 1 before it counted
        return handoffs

    def target(self, person: str) -> str | None:
        """Where events stamped `person` go now (None: they stay here)."""
        if not self.forward:
            return None
        entry = self.forward.get(person)
        return None if entry is None else entry[0]

    def hold(self, old: str, new: str, merged_ms: int) -> None:
        """Keep `old` a person of its own here until time reaches its merge into `new`. Held
        already for a merge into `new` (merged in twice, both ahead of time): the earlier
        merge stands; the later one moved it on to wait for the second, and the old
        person's hits from before it then never joined `new`'s journeys."""
        found = self.held.get(old)
        if found is not None and found[0] == new and found[1] <= merged_ms:
            return
        self._hold(old, new, merged_ms)
        self.touched.add(HELD + old)

    def _hold(self, old: str, new: str, merged_ms: int) -> None:
        self.held[old] = (new, merged_ms)
        heapq.heappush(self._held_order, (merged_ms, old, new))

    def holding(self, old: str) -> bool:
        """Whether `old` is kept apart, its merge still ahead in event time."""
        return bool(self.held) and old in self.held

    def due(self, watermark_ms: int) -> list[tuple[int, str, str]]:
        """The held merges time `watermark_ms` reaches, taken out, as (event time, old, new)
        in the order they happened (ties by the persons' ids, so every run agrees)."""
        due = []
        order = self._held_order
        while order and order[0][0] <= watermark_ms:
            at, old, new = heapq.heappop(order)
            if self.held.get(old) != (new, at):
                continue  # forgotten, or held again since for another merge
            del self.held[old]
            self.touched.add(HELD + old)
            due.append((at, old, new))
        return due

    def expect(self, old: str, merged_ms: int | None) -> None:
        """A person of another partition merged into one of ours at `merged_ms`: time waits
        short of it for its state (unless it came first: the handoff topic can be faster
        than `identity-merges`)."""
        if old in self.early:
            _take_one(self.early, old)
            self.touched.add(EARLY + old)
        else:
            if old in self.awaiting:
                self.awaited_again[old] = self.awaited_again.get(old, 0) + 1
            known = self.awaiting.get(old, merged_ms)
            # Several awaited: time waits short of the earliest until the last has come.
            earlier = None if known is None or merged_ms is None else min(known, merged_ms)
            self.awaiting[old] = earlier
            self.touched.add(AWAITED + old)

    def awaited_before(self) -> int | None:
        """Event time this partition may reach before a merged person's state arrives: just
        short of the earliest merge awaited. Up to there the old person's state changes
        nothing of ours (it arrives ahead of its merge, held apart until time reaches it,
        and its own deadlines already passed fire on arrival); past it, the new person's
        journeys would be decided without it. None: one merge's time is not known."""
        earliest = None
        for at in self.awaiting.values():
            if at is None:
                return None
            earliest = at if earliest is None else min(earliest, at)
        return None if earliest is None else earliest - 1

    def arrived(self, old: str) -> None:
        if old in self.awaited_again:
            _take_one(self.awaited_again, old)
            self.touched.add(AWAITED + old)
        elif old in self.awaiting:
            del self.awaiting[old]
            self.touched.add(AWAITED + old)
        else:
            self.early[old] = self.early.get(old, 0) + 1
            self.touched.add(EARLY + old)

    def forward_to(self, old: str, new: str, until: int) -> None:
        """Events of `old` go to `new` until event time `until`; so do those of persons that
        had merged into `old` before (each keeps its own expiry)."""
        self._set_forward(old, new, until)
        for stale in _members(self._by_target.pop(old, None)):
            _, expiry = self.forward[stale]
            self._set_forward(stale, new, expiry)

    def expire(self, watermark_ms: int) -> None:
        """Stop forwarding what the late tolerance no longer allows."""
        heap = self._expiry
        while heap and heap[0][0] <= watermark_ms:
            until, old = heapq.heappop(heap)
            entry = self.forward.get(old)
            if entry is None or entry[1] != until:
                continue  # set again since, with another expiry
            del self.forward[old]
            self._unlink(entry[0], old)
            self.touched.add(FORWARD + old)

    def names(self) -> set[str]:
        """Every person id an entry names."""
        return {*self.forward, *(new for new, _ in self.forward.values())} | (
            {*self.awaiting, *self.early} | {*self.held, *(new for new, _ in self.held.values())}
        )

    def forget(self, persons: set[str]) -> None:
        """Drop every entry naming one of `persons` (erased): forwards from or to them, and
        their handoffs awaited or early."""
        for old, (new, _) in list(self.forward.items()):
            if old in persons or new in persons:
                del self.forward[old]
                self._unlink(new, old)
                self.touched.add(FORWARD + old)
        for name in persons.intersection(self.awaiting):
            del self.awaiting[name]
            self.awaited_again.pop(name, None)
            self.touched.add(AWAITED + name)
        for name in persons.intersection(self.early):
            del self.early[name]
            self.touched.add(EARLY + name)
        for old, (new, _) in list(self.held.items()):
            if old in persons or new in persons:
                del self.held[old]
                self.touched.add(HELD + old)

    def take_entries(self) -> Iterator[tuple[str, Any]]:
        """(key, value now) for each key touched since the last call; None is a tombstone."""
        touched, self.touched = self.touched, set()
        for key in touched:
            yield key, self._entry(key)

    def _entry(self, key: str) -> Any:
        if key.startswith(FORWARD):
            target = self.forward.get(key[len(FORWARD) :])
            return None if target is None else list(target)
        if key.startswith(HELD):
            merge = self.held.get(key[len(HELD) :])
            return None if merge is None else list(merge)
        name = key[len(AWAITED) :]  # AWAITED and EARLY have the same length
        if key.startswith(AWAITED):
            if name not in self.awaiting:
                return None
            again = self.awaited_again.get(name)
            return [self.awaiting[name]] if again is None else [self.awaiting[name], again + 1]
        return self.early.get(name)

    def _set_forward(self, old: str, new: str, until: int) -> None:
        previous = self.forward.get(old)
        if previous is not None and previous[0] != new:
            self._unlink(previous[0], old)
        self.forward[old] = (new, until)
        self._link(new, old)
        if previous is None or previous[1] != until:
            heapq.heappush(self._expiry, (until, old))
        self.touched.add(FORWARD + old)

    def _link(self, new: str, old: str) -> None:
        found = self._by_target.get(new)
        if found is None:
            self._by_target[new] = old
        elif isinstance(found, set):
            found.add(old)
        elif found != old:
            self._by_target[new] = {found, old}

    def _unlink(self, new: str, old: str) -> None:
        found = self._by_target.get(new)
        if found is None:
            return
        if isinstance(found, set):
            found.discard(old)
            if len(found) == 1:
                self._by_target[new] = next(iter(found))
        elif found == old:
            del self._by_target[new]


def _take_one(counts: dict[str, int], name: str) -> None:
    if counts[name] > 1:
        counts[name] -= 1
    else:
        del counts[name]


def _members(found: str | set[str] | None) -> tuple[str, ...] | set[str]:
    if found is None:
        return ()
    return (found,) if isinstance(found, str) else found


@dataclass(slots=True)
class Outbox:
    """Rows for `journey-handoff`, by the partition of the person they go to."""

    partitions: int
    rows: dict[int, list[bytes]] = field(default_factory=dict)

    def person(
        self,
        new: str,
        old: str,
        snapshot: Any,
        relay: bool = False,
        merged_ms: int | None = None,
    ) -> None:
        """`old`'s journeys for `new` (None: it had none; the receiver still waits for this).
        `relay`: passed on by a partition `new` had left; nobody awaits it there. `merged_ms`:
        the merge's event time, which bounds the hits the receiver takes (`absorb`)."""
        row = {
            "kind": "person",
            "person_id": new,
            "from": old,
            "state": snapshot,
            "relay": relay,
            "at": merged_ms,
        }
        self._add(new, orjson.dumps(row))

    def event(self, new: str, event: dict[str, Any], old: str) -> None:
        """An event stamped `old` for `new`'s partition, which may hold `old` apart yet."""
        event["person_id"] = new
        row = {"kind": "event", "person_id": new, "from": old, "event": event}
        self._add(new, orjson.dumps(row))

    def _add(self, person: str, row: bytes) -> None:
        target = partition_for(person.encode(), self.partitions)
        self.rows.setdefault(target, []).append(row)
