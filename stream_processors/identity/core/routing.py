"""Routing events to persons (docs/concepts.md §3, docs/stages/identity.md): the partitioned half
of identity stitching.

The identity graph itself runs as one authority on a single-partition log; every routing worker
holds a replica of what it decided, the identifiers whose person is not the one they name
(`remapped`: identifier key -> person id). An event belongs to the person of its anchor, its
highest-priority usable identifier, exactly as `IdentityGraph.observe` decides: so routing is a
lookup, and an event whose link the authority has not decided yet gets the anchor's own person
id, which the authority's corrections (and ClickHouse's overrides) fix afterwards.

Pure: no I/O. `remapped` is any mapping the caller keeps current.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from schemas.identity_rules import IdentityRules
from schemas.partitioning import partition_for
from stream_processors.identity.core.merge_guards import Guards
from stream_processors.identity.core.records import person_id

_CACHE_LIMIT = 1_000_000
_new_tuple = tuple.__new__  # a named tuple without its `__new__`'s keyword handling
# `Route`'s fields: (person_id, key, partition, link, junk).
_Routed = tuple[str | None, str | None, int | None, bool, bool]
_NOWHERE: _Routed = (None, None, None, False, False)


class Route(NamedTuple):
    """Where one event goes. `person_id` and `key` are None when it has no usable identifier;
    `partition` is then None too (the caller keeps the event's own partition). `link` says
    the event carries two or more identifiers, `junk` that one of them is junk: the authority
    must see every junk one (each is audited) and any link that `Router.is_news`."""

    person_id: str | None
    key: str | None
    partition: int | None
    link: bool
    junk: bool = False


class Router:
    """Resolves events to persons with the authority's published map."""

    def __init__(self, rules: IdentityRules, remapped: Mapping[str, str], partitions: int) -> None:
        self.guards = Guards(rules)
        self.types = rules.priorities
        self.remapped = remapped
        self.partitions = partitions
        # identifier key -> its own person id and that person's partition; a key in here is
        # known not to be junk. Bounded: cleared when full (recomputing is cheap).
        self._own: dict[str, tuple[str, int]] = {}
        self._partition_of: dict[str, int] = {}
        # identifier tuple -> earliest (event time ms, event id) this worker sent the authority
        self._sent: dict[tuple[str, ...], tuple[int, str]] = {}

    def route(self, identity: Mapping[str, Any] | None) -> Route:
        """The person and partition of an event with this `identity` object."""
        return _new_tuple(Route, self._resolve(identity))

    def stamp(
        self, events: list[dict[str, Any]], home: int
    ) -> tuple[dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
        """Route a batch of events as `route` and `is_news` do one by one: set each event's
        `person_id` and `person_key` in place, group the events by their partition of the
        stitched topic (`home`, the input partition, for those without a person), and list
        the ones the authority must see, in order. One call per batch: the stage's inner
        loop, so no `Route` per event."""
        out: dict[int, list[dict[str, Any]]] = {}
        links: list[dict[str, Any]] = []
        resolve, is_news = self._resolve, self.is_news
        for event in events:
            identity = event.get("identity")
            pid, key, target, link, junk = resolve(identity)
            event["person_id"] = pid
            event["person_key"] = key
            if target is None:
                target = home
            bucket = out.get(target)
            if bucket is None:
                bucket = out[target] = []
            bucket.append(event)
            if link and (
                junk or is_news(event["identity"], event["occurred_at"], event["event_id"])
            ):
                links.append(event)
        return out, links

    def _resolve(self, identity: Mapping[str, Any] | None) -> _Routed:
        """`route`'s fields as a plain tuple (the batch path makes no `Route`)."""
        if not identity:
            return _NOWHERE
        anchor: str | None = None
        anchor_own: tuple[str, int] | None = None
        count = 0
        junk = False
        own = self._own
        for name in self.types:
            value = identity.get(name)
            if value is None:
                continue
            count += 1
            key = f"{name}:{value}"
            known = own.get(key)
            if known is None:
                if not isinstance(value, str) or self.guards.junk_reason(value) is not None:
                    junk = True
                    continue
                known = self._remember(key)
            if anchor is None:
                anchor, anchor_own = key, known
        if anchor is None or anchor_own is None:
            return (None, None, None, count > 1 or junk, junk)
        pid = self.remapped.get(anchor)
        if pid is None:
            return (anchor_own[0], anchor, anchor_own[1], count > 1, junk)
        return (pid, anchor, self.partition(pid), count > 1, junk)

    def partition(self, pid: str) -> int:
        """The partition of person `pid` on the stitched topic (murmur2 of the id, as Kafka's
        default partitioner would place a message keyed by it)."""
        found = self._partition_of.get(pid)
        if found is None:
            if len(self._partition_of) >= _CACHE_LIMIT:
                self._partition_of.clear()
            found = self._partition_of[pid] = partition_for(pid.encode(), self.partitions)
        return found

    def is_news(self, identity: Mapping[str, Any], occurred_at: str, event_id: str) -> bool:
        """False when this worker already sent the authority the same identifiers in an event
        that orders before this one (event time, then event id): a later link of the same
        identifiers can change nothing (the graph keeps the earliest link per pair), so the
        authority need not see it. Only for events without junk identifiers: each of those
        is audited."""
        ids = tuple([f"{n}:{v}" for n in self.types if (v := identity.get(n)) is not None])
        at = (int(datetime.fromisoformat(occurred_at).timestamp() * 1_000_000), event_id)
        sent = self._sent.get(ids)
        if sent is not None and sent <= at:
            return False
        if len(self._sent) >= _CACHE_LIMIT:
            self._sent.clear()
        self._sent[ids] = at
        return True

    def _remember(self, key: str) -> tuple[str, int]:
        if len(self._own) >= _CACHE_LIMIT:
            self._own.clear()
        pid = person_id(key)
        known = self._own[key] = (pid, self.partition(pid))
        return known
