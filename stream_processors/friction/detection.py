"""The friction stage's detector: every partition's windows summed, tested, and turned into
alerts (docs/stages/friction.md).

`friction-partials` has one partition, so one worker of the group runs this at a time (as
the identity authority). Per message (one partition's window versions, examples and
frontier):

1. `WindowMerger` sums the partials and closes a window once every partition has;
2. the `Detector` tests what closed (baselines per series), `Incidents` makes one incident
   per series and episode, `AlertGroups` one alert per problem;
3. each alert that changed is routed to its owning team, given its likely cause and example
   journeys (`AlertContext`), and published to `alerts` (keyed by alert id) in the stage's
   transaction, with the global windows to `friction-windows`.

State (the `detector` table, one partition): the merged windows per start, the detector's
rows (one per series, `detector_state`), the incidents, the alerts and the context. All of
it is written in the transaction that publishes what it decided, so a restarted worker
neither loses a firing alert, nor fires it twice, nor forgets a baseline. Webhooks are not
sent from here: `friction_webhooks` reads the committed alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import Any

import orjson

from schemas import envelope
from schemas.deadletter import FieldError
from schemas.settings import FrictionSettings, Settings
from schemas.topics import Topics
from stream_processors.friction import metrics as friction_metrics
from stream_processors.friction.alerts.core.context import AlertContext, ContextConfig
from stream_processors.friction.alerts.core.groups import AlertGroups, Group, GroupConfig
from stream_processors.friction.alerts.core.incident_records import Incident, epoch_ms
from stream_processors.friction.alerts.core.incidents import IncidentConfig, Incidents
from stream_processors.friction.alerts.core.records import Example
from stream_processors.friction.alerts.core.routing import AlertRouter
from stream_processors.friction.core import detector_state
from stream_processors.friction.core.baselines import BaselineConfig
from stream_processors.friction.core.detector import Detector, DetectorConfig, holds_counts
from stream_processors.friction.core.rules import FixedThreshold
from stream_processors.friction.core.sequential import CusumConfig
from stream_processors.friction.core.series import late_channel_keys
from stream_processors.friction.core.window_merge import Partial, WindowMerger
from stream_processors.friction.core.windows import Advance, WindowKey, one_start_at_a_time
from stream_processors.friction.rows import (
    StateWriter,
    global_window_row,
    read_partials,
)
from stream_processors.runtime import metrics
from stream_processors.runtime.dead_letters import StageDeadLetters, Where
from stream_processors.runtime.sender import TransactionalSender
from stream_processors.runtime.state import ChangelogTable, PartitionState

log = logging.getLogger(__name__)

STAGE = "friction"
DETECTOR = 0  # the one partition of `friction-partials`
MERGE_META = "\x00merge"
INCIDENTS_KEY = "\x00incidents"
GROUPS_KEY = "\x00groups"
REFERENCES_KEY = "\x00references"
MERGED = "m"  # key prefixes: merged window start, detector row, context window start
DETECTOR_ROW = "d"
CONTEXT = "x"
# ... an incident, an alert group: one row each, beside the incidents' and groups' meta row
# (whose lists, where all of them lived once, are read still and written empty): one row for
# all outgrew a Kafka message while a quiet source's alert fired for hours.
INCIDENT = "i"
GROUP = "g"


def detector_config(
    f: FrictionSettings,
    late_lateness: timedelta | None = None,
    late_keys: Callable[[WindowKey], bool] | None = None,
) -> DetectorConfig:
    """`late_lateness`: how long late channels' windows stay countable (None: no late
    channels); the detector revises, and incidents take evidence, for that long too.
    `late_keys`: the window keys only late channels feed, whose counts it judges
    `detector.late_count_wait` after their windows close."""
    d = f.detector
    revisable = max(
        d.revisable_for, f.allowed_lateness, late_lateness or timedelta(0), d.late_count_wait
    )
    return DetectorConfig(
        baseline=BaselineConfig(
            window=f.window,
            half_life_windows=d.half_life_windows,
            warmup_windows=d.warmup_windows,
            season_buckets=d.season_buckets,
            season_min_periods=d.season_min_periods,
        ),
        alpha=d.alpha,
        critical_alpha=d.critical_alpha,
        spike_ratio=d.spike_ratio,
        collapse_ratio=d.collapse_ratio,
        min_signals=d.min_signals,
        min_exposures=d.min_exposures,
        min_rate=d.min_rate,
        min_expected=d.min_expected,
        thresholds=tuple(FixedThreshold(**t.model_dump()) for t in d.thresholds),
        cusum=CusumConfig(
            h=d.cusum_h,
            critical_h=max(d.cusum_critical_h, d.cusum_h),
            rise=d.cusum_rise,
            fall=d.cusum_fall,
            odds=d.cusum_odds,
            progression_h=d.cusum_progression_h,
        )
        if d.cusum
        else None,
        progression=d.progression,
        forget_after=d.forget_after,
        revisable_for=revisable,
        late_keys=late_keys,
        late_count_wait=d.late_count_wait,
    )


@dataclass(slots=True)
class Decision:
    """The pure pieces of the detector half, restored from one state."""

    merger: WindowMerger
    detector: Detector
    incidents: Incidents
    groups: AlertGroups
    context: AlertContext
    state: PartitionState
    detector_keys: set[str] = field(default_factory=set)
    split_keys: set[str] = field(default_factory=set)  # the incident and group rows written
    decided: bool = False  # something closed since the last transaction
    republished: bool = False  # a published alert lost examples (an erasure): rows again
    merged: bool = False
    writer: StateWriter = field(init=False)

    def __post_init__(self) -> None:
        self.writer = StateWriter(self.state)


@dataclass
class FrictionDetection:
    settings: Settings
    topics: Topics
    sender: TransactionalSender
    table: ChangelogTable
    router: AlertRouter | None
    _decision: Decision | None = None
    # Whether a person id is erased (the suppression list; stream_processors/privacy): the
    # partitions' examples of them that were on their way before the erasure are not kept.
    erased: Callable[[str], bool] | None = None

    def __post_init__(self) -> None:
        f = self.settings.friction
        self.dead_letters = StageDeadLetters(STAGE, self.topics.dlq_friction, self.sender)
        self.late_keys = late_channel_keys(self.settings.processor.late_channels)
        self.late_lateness = max(self.settings.journeys.late_tolerance, f.allowed_lateness)
        self.config = detector_config(
            f, self.late_lateness if self.late_keys else None, self.late_keys
        )
        revisable = self.config.revisable_for
        self.incident_config = IncidentConfig(
            f.window,
            f.resolve_after,
            revisable,
            held=partial(holds_counts, self.config),
            held_for=f.detector.late_count_wait,
        )
        self.group_config = GroupConfig(f.window, f.resolve_after, revisable)
        self.context_config = ContextConfig(
            f.window,
            reference_windows=f.reference_windows,
            examples=f.examples,
            keep_windows=max(36, f.reference_windows + 4),
        )
        self.table.before_flush.append(self.persist)

    # -- state --------------------------------------------------------------------------------

    def decision(self) -> Decision:
        state = self.table[DETECTOR]
        if self._decision is None or self._decision.state is not state:
            self._decision = self._restore(state)
        return self._decision

    def _restore(self, state: PartitionState) -> Decision:
        f, data = self.settings.friction, state.data
        merger = WindowMerger(
            self.settings.topics.partitions,
            f.window,
            f.allowed_lateness,
            late_keys=self.late_keys,
            late_lateness=self.late_lateness,
        )
        merger.restore(data.get(MERGE_META), _prefixed(data, MERGED, int))
        detector_rows = _prefixed(data, DETECTOR_ROW, str)
        detector = detector_state.restore(self.config, detector_rows)
        incidents = Incidents(self.incident_config)
        incident_rows = _prefixed(data, INCIDENT, str)
        if INCIDENTS_KEY in data:
            incidents.restore(_joined(data[INCIDENTS_KEY], "incidents", incident_rows))
        groups = AlertGroups(self.group_config, self.router)
        group_rows = _prefixed(data, GROUP, str)
        if GROUPS_KEY in data:
            groups.restore(_joined(data[GROUPS_KEY], "groups", group_rows))
        split = {f"{INCIDENT}{k}" for k in incident_rows} | {f"{GROUP}{k}" for k in group_rows}
        context = AlertContext(self.context_config)
        context.restore(_prefixed(data, CONTEXT, int), data.get(REFERENCES_KEY) or {})
        log.info(
            "friction detector restored",
            extra={
                "series": detector.series_count,
                "frontier_ms": merger.frontier_ms,
                "alerts": len(groups.groups()),
            },
        )
        data.clear()
        return Decision(
            merger, detector, incidents, groups, context, state, set(detector_rows), split
        )

    def persist(self) -> None:
        """Write what changed since the last transaction into the table (sent with it)."""
        d = self._decision
        if d is None:
            return
        state = self.table.partitions.get(DETECTOR)
        if state is not d.state:
            self._decision = None  # revoked or restored since
            return
        d.writer.begin()
        put = d.writer.put
        touched, evicted = d.merger.take_changes()
        for start in touched:
            put(f"{MERGED}{start}", d.merger.snapshot_start(start))
        for start in evicted:
            put(f"{MERGED}{start}", None)
        if d.merged:
            put(MERGE_META, d.merger.snapshot_meta())
            d.merged = False
        if d.decided:
            rows = dict(detector_state.rows(d.detector))
            for key, value in rows.items():
                put(f"{DETECTOR_ROW}{key}", value)
            for gone in d.detector_keys - rows.keys():
                put(f"{DETECTOR_ROW}{gone}", None)
            d.detector_keys = set(rows)
        if d.decided or d.republished:
            _put_alerts(d)
            d.decided = d.republished = False
        touched, evicted = d.context.take_changes()
        for start in touched:
            put(f"{CONTEXT}{start}", d.context.snapshot_start(start))
        for start in evicted:
            put(f"{CONTEXT}{start}", None)
        if d.context.references_changed:
            put(REFERENCES_KEY, d.context.snapshot_references())

    # -- input --------------------------------------------------------------------------------

    def handle(self, payload: bytes | None, offset: int) -> None:
        if offset <= self.table.applied_offset(DETECTOR):
            metrics.REDELIVERED.labels(STAGE).inc()
            return
        d = self.decision()
        where = Where(self.topics.friction_partials, DETECTOR, offset)
        decoded: envelope.Decoded | None = None
        partials: list[Partial] = []
        examples: list[tuple[int, str, list[Example]]] = []
        try:
            decoded = envelope.decode(payload or b"")
            # The partitions always name themselves (`produce_rows` with their partition).
            if decoded.source is None or decoded.source >= d.merger.partitions:
                raise envelope.EnvelopeError("unsupported_envelope", "not from a known partition")
            # Read whole before anything is applied: a row that is no partial drops nothing.
            partials, examples = read_partials(decoded.events)
        except envelope.EnvelopeError as exc:
            self.dead_letters.message(payload, exc, where)
            decoded = None
        except (KeyError, TypeError, ValueError, AttributeError):
            problem = FieldError(field="<row>", message="not a friction-partials row")
            self.dead_letters.rows(payload, [problem], where)
            decoded = None
        if decoded is not None and decoded.source is not None:
            erased = self.erased
            for start, scope, found in examples:
                kept = found if erased is None else [e for e in found if not erased(e.person_id)]
                d.context.add_examples(start, scope, kept)
            advance = d.merger.apply(decoded.source, partials, decoded.watermark_ms)
            d.merged = True
            if advance.windows or len(advance.closed):
                for step in one_start_at_a_time(advance):
                    self._decide(d, step)
        self.table.mark_applied(DETECTOR, offset, d.merger.frontier_ms)

    def _decide(self, d: Decision, advance: Advance) -> None:
        alerts = d.detector.process(advance)
        d.context.observe(advance)
        records = d.incidents.process(alerts, advance.closed)
        for record in records:
            if record.version == 1:
                friction_metrics.ALERT_INCIDENTS.labels(record.kind).inc()
        for batch in _one_record_each(records):
            for group in d.groups.process(batch, d.incidents.front_ms):
                self._publish(d, group)
        d.context.keep_references(g.group_id for g in d.groups.groups())
        rows = [global_window_row(w) for w in advance.windows]
        if rows:
            self.sender.produce_rows(self.topics.friction_windows, rows, d.merger.frontier_ms, 0)
        d.decided = True
        self._count(d, advance)

    def _publish(self, d: Decision, group: Group) -> None:
        record = group.record()
        d.context.remember_reference(group.group_id, epoch_ms(record.started_at))
        if self.router is not None:
            route = self.router.route(record.series)
            record = replace(record, team=route.team, route=route.matched)
        record = replace(
            record, cause=d.context.cause(record), examples=d.context.examples_for(record)
        )
        published = d.groups.publish(group, record)
        if published is None:
            return
        key = published.incident_id.encode()
        self.sender.produce(self.topics.alerts, orjson.dumps(published.row()), key, 0)
        friction_metrics.ALERT_RECORDS.labels(published.status).inc()
        if published.notify and published.status == "firing":
            metrics.ALERTS_FIRED.labels(published.kind, published.severity).inc()
        if published.notify:
            log.warning(
                "alert %s: %s",
                published.status,
                published.explanation,
                extra={
                    "alert_id": published.incident_id,
                    "version": published.version,
                    "team": published.team,
                    "cause": published.cause,
                },
            )

    def _count(self, d: Decision, advance: Advance) -> None:
        closed = len(advance.closed)
        if closed:
            friction_metrics.FRICTION_WINDOWS_CLOSED.labels("global").inc(closed)
        reemitted = sum(1 for w in advance.windows if w.previous is not None)
        if reemitted:
            friction_metrics.FRICTION_WINDOWS_REEMITTED.labels("global").inc(reemitted)
        if d.merger.frontier_ms is not None:
            friction_metrics.FRICTION_WATERMARK.set(d.merger.frontier_ms / 1000)
        friction_metrics.FRICTION_SERIES.set(d.detector.series_count)


def _one_record_each(records: list[Incident]) -> list[list[Incident]]:
    """`records` in runs holding each incident once, so its alert is published at each of
    them: an incident found late (a late channel's export) that opens and resolves in one
    advance is raised firing, then resolved, rather than only ever seen resolved."""
    batches: list[list[Incident]] = [[]]
    seen: set[str] = set()
    for record in records:
        if record.incident_id in seen:
            batches.append([])
            seen.clear()
        batches[-1].append(record)
        seen.add(record.incident_id)
    return batches


def _prefixed(data: dict[str, Any], prefix: str, key: Callable[[str], Any]) -> dict[Any, Any]:
    return {key(k[len(prefix) :]): v for k, v in data.items() if k.startswith(prefix)}


def _put_alerts(d: Decision) -> None:
    """The incidents and the alert groups: a meta row each and a row per item."""
    put = d.writer.put
    incidents, groups = d.incidents.snapshot(), d.groups.snapshot()
    split = {f"{INCIDENT}{row['id']}": row for row in incidents["incidents"]}
    split |= {f"{GROUP}{row['id']}": row for row in groups["groups"]}
    put(INCIDENTS_KEY, {**incidents, "incidents": []})
    put(GROUPS_KEY, {**groups, "groups": []})
    for key, value in split.items():
        put(key, value)
    for gone in d.split_keys - split.keys():
        put(gone, None)
    d.split_keys = set(split)


def _joined(meta: dict[str, Any], name: str, rows: dict[str, Any]) -> dict[str, Any]:
    """A snapshot from its meta row and its rows (one per item); a meta row from before the
    rows came still holds them all."""
    return {**meta, name: [*meta.get(name, []), *rows.values()]}
