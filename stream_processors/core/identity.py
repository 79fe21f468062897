"""Identity stitching (domain.md §3): which person an event belongs to, and how persons change.

Identifiers seen together in one event are links. An event's identifiers are first cleaned of
junk values (a `denylist` refusal), then the event is linked star-wise from its anchor (its
highest-priority identifier) to each other identifier. The persons are a deterministic function
of the set of links: links are decided in (event time, event id, priority) order, and a link
joins two persons unless a guard refuses (two customer ids, a cap). So arrival order never
matters:

- a link later than every link of the clusters it touches is decided at once (the common case);
- a link earlier than some link there re-decides those clusters by replaying their links in
  order, and the difference is sent as corrections: merges, moves of identifiers between
  persons, and retractions or new refusals.

Pure: no I/O, no clock. `snapshot` and `IdentityGraph.restore` give the state as plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .identity_corrections import person_changes, refusal_changes
from .identity_persons import Guards, Partition, replay
from .identity_records import (
    Link,
    MergeRecord,
    MoveRecord,
    RefusalRecord,
    Resolution,
    person_id,
)
from .identity_rules import IdentityRules
from .identity_state import Cluster, GraphState, dump, load

Changes = tuple[list[MergeRecord], list[MoveRecord], list[RefusalRecord]]
_NO_OFFSET = timedelta(0)
_new_tuple = tuple.__new__


class IdentityGraph:
    """The identity graph of one partition's identifiers, and the records of its changes."""

    def __init__(self, rules: IdentityRules | None = None) -> None:
        rules = rules if rules is not None else IdentityRules()
        self._use(GraphState(Partition(Guards(rules))))
        # Links that became the earliest of their pair since the last `take_recorded()`:
        # what a caller must persist to rebuild the graph (it is a function of these links).
        self.recorded: list[Link] = []

    def take_recorded(self) -> list[Link]:
        """The links recorded since the last call, and forget them."""
        out, self.recorded = self.recorded, []
        return out

    def _use(self, state: GraphState) -> None:
        self._state = state
        self._guards = state.partition.guards
        self._ids = state.partition.ids
        self.rules = self._guards.rules

    def observe(
        self, identifiers: Mapping[str, str | None], event_time: datetime, event_id: str
    ) -> Resolution:
        """Resolve one event's identifiers (type -> value; None means absent) to its person,
        linking them. `event_time` must be timezone-aware. An identifier seen before, alone in
        its event, costs one dict lookup."""
        key = None
        for name, value in identifiers.items():
            if value is not None:
                if key is not None:
                    return self._observe(identifiers, event_time, event_id)
                key = f"{name}:{value}"
        if key is None:
            return Resolution(None)
        pid = self._ids.get(key)
        if pid is not None:
            return _new_tuple(Resolution, (pid, (), (), ()))  # Resolution(pid), 40% cheaper
        return self._first_sight(key, event_time, event_id)

    def person_of(self, key: str) -> str | None:
        """The person id of identifier `"<type>:<value>"`, or None if never seen."""
        return self._ids.get(key)

    def size(self) -> int:
        """How many identifiers the graph holds."""
        return len(self._ids)

    def members(self, pid: str) -> list[str]:
        """The identifier keys of person `pid` (empty if there is no such person now); a person
        of one identifier is found only by its own id, which that identifier names."""
        found = self._state.partition.persons.get(pid)
        if found is not None:
            return list(found.members)
        return []

    def persons(self) -> dict[str, list[str]]:
        """Every person id with its identifiers (sorted); for tests, reports and debugging."""
        out: dict[str, list[str]] = {}
        for key, pid in self._ids.items():
            out.setdefault(pid, []).append(key)
        return {pid: sorted(keys) for pid, keys in sorted(out.items())}

    def refusals(self) -> list[RefusalRecord]:
        """The refused links in force: one per identifier pair, for its earliest link."""
        return sorted(self._state.refusals.values(), key=lambda r: (r.identifiers, r.event_id))

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready dicts and lists."""
        return dump(self._state)

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any], rules: IdentityRules) -> IdentityGraph:
        """A graph from `snapshot()` output; the rules must be the ones it was built with."""
        graph = cls(rules)
        graph._use(load(snapshot, rules))
        return graph

    # -- events with more than one identifier, or new or junk ones -------------------------

    def _first_sight(self, key: str, event_time: datetime, event_id: str) -> Resolution:
        """An event whose one identifier is new (or junk)."""
        name, _, value = key.partition(":")
        if name not in self._guards.rank:
            raise ValueError(f"unknown identifier type {name!r}")
        reason = self._guards.junk_reason(value)
        if reason is not None:
            refusal = _denied([(key, reason)], event_id, _utc(event_time))
            return Resolution(None, refusals=(refusal,))
        pid = self._ids[key] = person_id(key)
        return Resolution(pid)

    def _observe(
        self, identifiers: Mapping[str, str | None], event_time: datetime, event_id: str
    ) -> Resolution:
        time = _utc(event_time)
        keys, junk = self._split(identifiers)
        refusals: list[RefusalRecord] = []
        if junk:
            refusals.append(_denied(junk, event_id, time))
        if not keys:
            return Resolution(None, refusals=tuple(refusals))
        ids = self._ids
        for _, key in keys:
            if key not in ids:
                ids[key] = person_id(key)
        anchor = keys[0][1]
        if len(keys) == 1:
            return Resolution(ids[anchor], refusals=tuple(refusals))
        merges, moves, refused = self._link(anchor, keys[1:], time, event_id)
        return Resolution(ids[anchor], tuple(merges), tuple(moves), (*refusals, *refused))

    def _split(
        self, identifiers: Mapping[str, str | None]
    ) -> tuple[list[tuple[int, str]], list[tuple[str, str]]]:
        """Usable identifiers as (rank, key), best first, and junk ones as (key, reason)."""
        guards, ids = self._guards, self._ids
        rank = guards.rank
        keys: list[tuple[int, str]] = []
        junk: list[tuple[str, str]] = []
        for name, value in identifiers.items():
            if value is None:
                continue
            if name not in rank:
                raise ValueError(f"unknown identifier type {name!r}")
            key = f"{name}:{value}"
            reason = None if key in ids else guards.junk_reason(value)
            if reason is None:
                keys.append((rank[name], key))
            else:
                junk.append((key, reason))
        keys.sort()
        junk.sort()
        return keys, junk

    def _link(
        self, anchor: str, others: list[tuple[int, str]], time: datetime, event_id: str
    ) -> Changes:
        """Record the event's links (earliest per pair) and decide them."""
        pairs = self._state.pairs
        new: list[Link] = []
        for rank, key in others:
            known = pairs.get((anchor, key))
            link = Link(time, event_id, rank, key, anchor)
            if known is None or link < known:
                new.append(link)
        if not new:
            return [], [], []
        self.recorded.extend(new)
        cluster, late = self._join(new)
        if late:
            return self._recompute(cluster, time, event_id)
        return self._decide(new)

    def _join(self, new: list[Link]) -> tuple[Cluster, bool]:
        """Merge the clusters the links touch; `late` when a link there is later than them."""
        clusters, pairs = self._state.clusters, self._state.pairs
        found: dict[int, Cluster] = {}
        loose: list[str] = []
        for key in (new[0].u, *(link.v for link in new)):
            cluster = clusters.get(key)
            if cluster is None:
                loose.append(key)
            else:
                found[id(cluster)] = cluster
        late = False
        base = None
        for cluster in found.values():
            late = late or cluster.latest > new[0]
            if base is None or len(cluster.members) > len(base.members):
                base = cluster
        if base is None:
            base = Cluster([], [], new[-1])
        for other in found.values():
            if other is not base:
                _absorb(base, other, clusters)
        for key in loose:
            base.members.append(key)
            clusters[key] = base
        for link in new:
            replaced = pairs.get(link.pair)
            if replaced is not None:
                base.links.remove(replaced)
            pairs[link.pair] = link
            base.links.append(link)
        base.latest = max(base.latest, new[-1])
        return base, late

    def _decide(self, new: list[Link]) -> Changes:
        """Decide links later than every link of their cluster, as they come."""
        partition, refusals = self._state.partition, self._state.refusals
        merges: list[MergeRecord] = []
        refused: list[RefusalRecord] = []
        for link in new:
            outcome = partition.apply(link)
            if isinstance(outcome, MergeRecord):
                merges.append(outcome)
            elif outcome is not None:
                refusals[link.pair] = outcome
                refused.append(outcome)
        return merges, [], refused

    def _recompute(self, cluster: Cluster, time: datetime, event_id: str) -> Changes:
        """Re-decide a cluster from its links in order; corrections are the difference."""
        state, partition = self._state, self._state.partition
        cluster.links.sort()
        cluster.latest = cluster.links[-1]
        before = {key: partition.ids[key] for key in cluster.members}
        old_refusals: dict[tuple[str, str], RefusalRecord] = {}
        for link in cluster.links:
            if (refusal := state.refusals.pop(link.pair, None)) is not None:
                old_refusals[link.pair] = refusal
        # Replayed with each person named by its best identifier; ids are derived at the end.
        local = Partition(self._guards, {key: key for key in cluster.members})
        new_refusals = replay(local, cluster.links)
        named = {best: self._id_named_by(best) for best in set(local.ids.values())}
        after = {key: named[best] for key, best in local.ids.items()}
        for pid in set(before.values()):
            partition.persons.pop(pid, None)
        for person in local.persons.values():
            person.id = named[person.id]
            partition.persons[person.id] = person
        partition.ids.update(after)
        state.refusals.update(new_refusals)
        merges, moves = person_changes(before, after, event_id, time)
        return merges, moves, refusal_changes(old_refusals, new_refusals)

    def _id_named_by(self, key: str) -> str:
        """`person_id(key)`, reusing the current id of `key` when it already names its person."""
        partition = self._state.partition
        return partition.ids[key] if partition.best_of(key) == key else person_id(key)


def _absorb(base: Cluster, other: Cluster, clusters: dict[str, Cluster]) -> None:
    base.members.extend(other.members)
    base.links.extend(other.links)
    for key in other.members:
        clusters[key] = base
    base.latest = max(base.latest, other.latest)


def _denied(junk: list[tuple[str, str]], event_id: str, time: datetime) -> RefusalRecord:
    names = tuple(key for key, _ in junk)
    detail = ", ".join(f"{key}: {reason}" for key, reason in junk)
    return RefusalRecord("denylist", event_id, time, names, detail)


def _utc(moment: datetime) -> datetime:
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"event time {moment.isoformat()} has no timezone")
    return moment if offset == _NO_OFFSET else moment.astimezone(UTC)
