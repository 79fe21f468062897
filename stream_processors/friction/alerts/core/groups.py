"""One alert per problem: the per-series incidents of one stretch of trouble, grouped
(docs/concepts.md §6).

A broken checkout raises several series at once: the aggregate friction of `web:/checkout`,
its `error` and `payment_declined` signals, the friction of the whole web channel, and an
hour later the drop-offs at the checkout stage. `Incidents` makes one incident per series;
paging five times for one problem is what people learn to ignore. So incidents are grouped
into alerts:

- **Related** series share a channel (`web:/checkout` and `web:*`; `purchase:checkout:web`)
  or a journey (`purchase:purchase:store` and `purchase:checkout:web`: a stage that stops
  being reached shows as drop-offs at the one before). A channel-wide series of all
  channels (`purchase:checkout:*`) relates by its journey.
- An incident **joins** an alert of a related series whose incidents alert within
  `reach_windows` windows of its own (the incidents' `resolve_after`), preferring one that
  is firing; otherwise it opens a new alert, whose id is that incident's id.
- The alert is **firing** while any of its incidents fires, **resolved** when none does,
  **retracted** when every one was withdrawn. Its headline (series, figures, explanation)
  is the most specific of its incidents: a touchpoint before its channel, a friction signal
  before a count that collapsed before a drop-off, then the earliest; the others are listed
  as `related`.
- Every change gives a new version. Given a router, each of its series gets its owning team;
  who a version pages (`notify`, `page`, `paged_before`, `change`) is `paging.py`'s
  decision: an opened alert pages every owning team, a team that comes to own one of its
  series while it fires is paged with what changed, a resolve pages every team paged.

The trade-off, stated: two unrelated problems in one channel at the same time make one
alert listing both series (each with its figures), not two.

Pure; `snapshot()`/`restore()` for the stage's changelog.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, cast

from stream_processors.friction.alerts.core.incident_records import (
    SEVERITY_RANK,
    Incident,
    Status,
    epoch_ms,
)
from stream_processors.friction.alerts.core.paging import decide, owners, unique
from stream_processors.friction.alerts.core.records import AlertRecord, Related
from stream_processors.friction.alerts.core.routing import AlertRouter, dimensions
from stream_processors.friction.core.rules import Series, Severity

SNAPSHOT_VERSION = 1
# The incidents an alert lists at most: its series' firing incidents first, then the latest.
# An alert that fires for days gathers episodes; its record (with each member as `related`)
# and the stage's state must stay within a Kafka message whatever it gathers.
MAX_MEMBERS = 16
_KIND_RANK = {"friction": 0, "volume": 1, "entries": 2, "dropoff": 3}


@dataclass(frozen=True, slots=True)
class GroupConfig:
    window: timedelta = timedelta(minutes=5)
    reach_windows: int = 3  # the incidents' resolve_after
    keep_for: timedelta = timedelta(days=1)  # the incidents' revisable_for


def relation_keys(series: Series) -> frozenset[str]:
    """What a series relates to others by: its channel (unless all channels) and journey."""
    dims = dimensions(series)
    keys = set()
    channel = dims.get("channel")
    if channel and channel != "*":
        keys.add(f"channel:{channel}")
    if "journey" in dims:
        keys.add(f"journey:{dims['journey']}")
    return frozenset(keys)


def _wildcard(series: Series) -> bool:
    return series.scope == "*" or series.scope.endswith(":*")


def headline_rank(incident: Incident) -> tuple[Any, ...]:
    """Smaller is more specific (see the module docstring)."""
    s = incident.series
    return (
        incident.status == "retracted",
        _wildcard(s),
        _KIND_RANK.get(s.kind, 9),
        epoch_ms(incident.started_at),
        s.kind == "friction" and s.name == "friction",
        incident.incident_id,
    )


@dataclass(slots=True)
class Group:
    """One alert's incidents (latest record of each, in the order they joined)."""

    group_id: str
    members: dict[str, Incident] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    notified: Status | None = None
    published: AlertRecord | None = None
    paged: tuple[str, ...] = ()  # every team a version of this alert paged

    def add(self, incident: Incident) -> None:
        self.members[incident.incident_id] = incident
        self.keys |= relation_keys(incident.series)

    def trim(self, limit: int = MAX_MEMBERS) -> list[str]:
        """Drop the members an alert no longer needs to list; the ids dropped. Of each
        series, an episode that ended is superseded by a later one (the same problem again,
        shown by its latest record); past `limit`, the members that ended longest ago go
        first, firing ones last."""
        latest: dict[Series, Incident] = {}
        for member in self.members.values():
            known = latest.get(member.series)
            if known is None or _recency(member) >= _recency(known):
                latest[member.series] = member
        dropped = [
            iid
            for iid, m in self.members.items()
            if m.status != "firing" and latest[m.series] is not m
        ]
        kept = [m for iid, m in self.members.items() if iid not in dropped]
        if len(kept) > limit:
            kept.sort(key=lambda m: (m.status == "firing", _recency(m)), reverse=True)
            dropped += [m.incident_id for m in kept[limit:]]
        for iid in dropped:
            del self.members[iid]
        return dropped

    def standing(self) -> list[Incident]:
        live = [m for m in self.members.values() if m.status != "retracted"]
        return live or list(self.members.values())

    def span(self) -> tuple[int, int]:
        """First window start and last window end of its incidents that stand."""
        standing = self.standing()
        return (
            min(epoch_ms(m.started_at) for m in standing),
            max(epoch_ms(m.last_window_end) for m in standing),
        )

    def status(self) -> Status:
        statuses = {m.status for m in self.members.values()}
        if "firing" in statuses:
            return "firing"
        return "retracted" if statuses == {"retracted"} else "resolved"

    def headline(self) -> Incident:
        return min(self.members.values(), key=headline_rank)

    def record(self) -> AlertRecord:
        """The alert as its incidents say it is (version 0; team, cause and examples are the
        caller's)."""
        head, standing, status = self.headline(), self.standing(), self.status()
        resolved = [m.resolved_at for m in standing if m.resolved_at is not None]
        late = all(m.late for m in standing)
        return AlertRecord(
            incident_id=self.group_id,
            version=0,
            status=status,
            series=head.series,
            kind=head.kind,
            started_at=min(m.started_at for m in standing),
            last_window_start=max(m.last_window_start for m in standing),
            last_window_end=max(m.last_window_end for m in standing),
            windows=max(m.windows for m in standing),
            observed=head.observed,
            expected=head.expected,
            volume=head.volume,
            p_value=head.p_value,
            severity=_max_severity(m.severity for m in standing),
            explanation=head.explanation,
            last_alert_id=head.last_alert_id,
            resolved_at=max(resolved) if status == "resolved" and resolved else None,
            related=tuple(Related.of(m) for m in self.members.values() if m is not head),
            # Late when none of its incidents was found as its window closed.
            late=late,
            found_late_by=min(m.found_late_by for m in standing) if late else 0,
        )


class AlertGroups:
    """Incidents into alerts; feed it every record `Incidents.process` returns, in order."""

    def __init__(
        self, config: GroupConfig | None = None, router: AlertRouter | None = None
    ) -> None:
        self.config = config or GroupConfig()
        self._router = router
        size = int(self.config.window.total_seconds() * 1000)
        self._reach = self.config.reach_windows * size
        self._keep = int(self.config.keep_for.total_seconds() * 1000) + self._reach
        self._groups: dict[str, Group] = {}
        self._member_of: dict[str, str] = {}

    def process(self, incidents: Iterable[Incident], front_ms: int | None) -> list[Group]:
        """Apply incident records; return the groups they changed, in the order changed."""
        touched: dict[str, Group] = {}
        for incident in _in_rank_order(incidents):
            gid = self._member_of.get(incident.incident_id)
            group = self._groups.get(gid) if gid is not None else None
            if group is None:
                group = self._join(incident) or Group(incident.incident_id)
                self._groups[group.group_id] = group
                self._member_of[incident.incident_id] = group.group_id
            group.add(incident)
            for gone in group.trim():
                self._member_of.pop(gone, None)
            touched[group.group_id] = group
        if front_ms is not None:
            self._forget(front_ms, touched)
        return list(touched.values())

    def publish(self, group: Group, record: AlertRecord) -> AlertRecord | None:
        """The next version of `group`'s alert if `record` (its content, as enriched by the
        caller) differs from the last published; None when nothing changed. Who it pages is
        decided here (see the module docstring)."""
        record = self._owned(record)
        if record.content_equal(group.published):
            return None
        last = group.published
        pages = decide(last, record, group.notified, group.paged)
        published = replace(
            record,
            version=(last.version if last is not None else 0) + 1,
            notify=pages.notify,
            page=pages.page,
            paged_before=group.paged,
            change=pages.change,
        )
        if pages.notify:
            group.notified = record.status
        group.paged = unique((*group.paged, *pages.page))
        group.published = published
        return published

    def _owned(self, record: AlertRecord) -> AlertRecord:
        """The record with the owning team of each of its series, and `teams`."""
        if self._router is not None:
            route = self._router.route(record.series)
            related = tuple(
                replace(r, team=self._router.route(r.series).team) for r in record.related
            )
            record = replace(record, team=route.team, route=route.matched, related=related)
        return replace(record, teams=owners(record))

    def groups(self) -> list[Group]:
        return list(self._groups.values())

    def _join(self, incident: Incident) -> Group | None:
        """The alert `incident` joins: of the related ones in reach, a firing one first, then
        the latest to begin; ties by id, never by the order the groups are held in."""
        keys = relation_keys(incident.series)
        begin, end = epoch_ms(incident.started_at), epoch_ms(incident.last_window_end)
        best: tuple[tuple[bool, int, str], Group] | None = None
        for group in self._groups.values():
            if not keys & group.keys:
                continue
            first, last = group.span()
            if begin > last + self._reach or end < first - self._reach:
                continue
            rank = (group.status() != "firing", -first, group.group_id)
            if best is None or rank < best[0]:
                best = (rank, group)
        return best[1] if best is not None else None

    def _forget(self, front_ms: int, keep: dict[str, Group]) -> None:
        for gid, group in list(self._groups.items()):
            if gid in keep or group.status() == "firing":
                continue
            if group.span()[1] + self._keep < front_ms:
                del self._groups[gid]
                for member in group.members:
                    self._member_of.pop(member, None)

    # -- snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "v": SNAPSHOT_VERSION,
            "groups": [
                {
                    "id": g.group_id,
                    "members": [m.to_dict() for m in g.members.values()],
                    "notified": g.notified,
                    "published": g.published.to_dict() if g.published is not None else None,
                    "paged": list(g.paged),
                }
                for g in self._groups.values()
            ],
        }

    def restore(self, data: dict[str, Any]) -> None:
        if data.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"alert group snapshot version {data.get('v')!r} is not supported")
        self._groups.clear()
        self._member_of.clear()
        for row in data["groups"]:
            group = Group(str(row["id"]), notified=cast(Status | None, row["notified"]))
            for member in row["members"]:
                group.add(Incident.from_dict(member))
                self._member_of[member["incident_id"]] = group.group_id
            published = row["published"]
            group.published = AlertRecord.from_dict(published) if published else None
            group.paged = _paged(row, group)
            self._groups[group.group_id] = group


def _paged(row: dict[str, Any], group: Group) -> tuple[str, ...]:
    """The teams paged; a snapshot from before teams were tracked paged its headline's route
    on every status change, so its last headline's team is the best that is known."""
    if "paged" in row:
        return tuple(str(team) for team in row["paged"])
    last = group.published
    return (last.team,) if group.notified is not None and last is not None and last.team else ()


def _in_rank_order(incidents: Iterable[Incident]) -> list[Incident]:
    """The records most specific first (`headline_rank`, status aside), each incident's in the
    order given. Which alerts form must not depend on the order a step's alarms came in: an
    incident opens an alert or joins one already formed, and relation is not transitive (a
    web volume and a store volume relate only through a journey seen on both), so the order
    decides the groups. It follows the merger's arrival order, which a paused upstream stage
    changes (the chaos suite saw other headlines after a SIGKILL)."""
    records = list(incidents)
    rank: dict[str, tuple[Any, ...]] = {}
    for record in records:
        rank.setdefault(record.incident_id, headline_rank(record)[1:])
    return sorted(records, key=lambda r: rank[r.incident_id])


def _recency(incident: Incident) -> tuple[int, int]:
    return epoch_ms(incident.last_window_end), epoch_ms(incident.started_at)


def _max_severity(values: Iterable[str]) -> Severity:
    return cast(Severity, max(values, key=SEVERITY_RANK.__getitem__))
