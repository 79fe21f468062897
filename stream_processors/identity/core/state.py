"""The identity graph's state, and its snapshot as plain dicts and lists.

Besides the persons (`Partition`), the graph keeps every accepted link, one per identifier
pair (the earliest: a later link of the same pair can never change a decision, because persons
only grow while links are replayed in order and the guards only refuse more as they grow), and
groups identifiers into clusters: the connected parts of the graph of all links, refused ones
included. A cluster is what a late link re-decides; nothing outside it can change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.identity_rules import IdentityRules
from stream_processors.identity.core.merge_guards import Guards
from stream_processors.identity.core.persons import Partition, type_of
from stream_processors.identity.core.records import Link, RefusalRecord

STATE_VERSION = 1


@dataclass(slots=True, eq=False)
class Cluster:
    """Identifiers connected by links (accepted or refused), the links, and the latest one.
    Compared by identity: two clusters are never the same unless they are one object."""

    members: list[str]
    links: list[Link]
    latest: Link


@dataclass(slots=True)
class GraphState:
    partition: Partition
    clusters: dict[str, Cluster] = field(default_factory=dict)
    pairs: dict[tuple[str, str], Link] = field(default_factory=dict)
    refusals: dict[tuple[str, str], RefusalRecord] = field(default_factory=dict)


def dump(state: GraphState) -> dict[str, Any]:
    """The state as JSON-ready dicts and lists; persons and clusters are rebuilt on load."""
    part = state.partition
    return {
        "v": STATE_VERSION,
        "rules": part.guards.rules.model_dump(mode="json"),
        "ids": dict(part.ids),
        "persons": [list(p.members) for p in part.persons.values()],
        "links": [
            [link.event_time.isoformat(), link.event_id, link.u, link.v]
            for link in state.pairs.values()
        ],
        "refusals": [[*pair, r.rule, r.detail] for pair, r in state.refusals.items()],
    }


def load(doc: Mapping[str, Any], rules: IdentityRules) -> GraphState:
    """Rebuild the state `dump` wrote. Raises ValueError for another version or other rules:
    decisions made under other rules are not these rules' decisions (replay `raw` instead)."""
    if doc.get("v") != STATE_VERSION:
        raise ValueError(f"identity state version {doc.get('v')!r}, expected {STATE_VERSION}")
    if IdentityRules.model_validate(doc["rules"]).model_dump() != rules.model_dump():
        raise ValueError("identity state was built with other rules; replay to change rules")
    guards = Guards(rules)
    partition = Partition(guards, dict(doc["ids"]))
    partition.install(doc["persons"])
    state = GraphState(partition)
    for time, event_id, u, v in doc["links"]:
        link = Link(datetime.fromisoformat(time), event_id, guards.rank[type_of(v)], v, u)
        state.pairs[link.pair] = link
    for u, v, rule, detail in doc["refusals"]:
        link = state.pairs[(u, v)]
        state.refusals[(u, v)] = RefusalRecord(rule, link.event_id, link.event_time, (u, v), detail)
    state.clusters = clusters_of(state.pairs.values())
    return state


def clusters_of(links: Iterable[Link]) -> dict[str, Cluster]:
    """Group links into clusters (union-find over their identifiers)."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    all_links: list[Link] = list(links)
    for link in all_links:
        a, b = root(link.u), root(link.v)
        if a != b:
            parent[a] = b
    by_root: dict[str, Cluster] = {}
    for link in all_links:
        top = root(link.u)
        cluster = by_root.get(top)
        if cluster is None:
            by_root[top] = Cluster([], [link], link)
        else:
            cluster.links.append(link)
            cluster.latest = max(cluster.latest, link)
    out: dict[str, Cluster] = {}
    for key in parent:
        cluster = by_root[root(key)]
        cluster.members.append(key)
        out[key] = cluster
    return out
