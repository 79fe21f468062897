"""The SQL behind each `journeys query` question, over the analysts' views (sinks/views.py),
with its parameters bound by ClickHouse (`{name:Type}`), never pasted into the text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from deploy.query.options import Step, TimeRange
from sinks.views import dropoff_paths_select

# `--by` names each question takes, and the view column behind each.
FUNNEL_BREAKDOWNS = {
    "channel": "first_channel",
    "first_channel": "first_channel",
    "stage_channel": "stage_channel",
    "day": "day",
}
DROPOFF_BREAKDOWNS = {
    "stage_channel": "stage_channel",
    "channel": "last_channel",
    "last_channel": "last_channel",
    "day": "day",
    "reason": "reason",
}
SWITCH_BREAKDOWNS = {"day": "day", "after_friction": "after_friction"}


@dataclass(frozen=True)
class Query:
    sql: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Where:
    """The conditions of a WHERE clause and the parameters they bind."""

    conditions: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    def equals(self, column: str, name: str, value: str | None) -> _Where:
        if value is not None:
            self.conditions.append(f"{column} = {{{name}:String}}")
            self.parameters[name] = value
        return self

    def within(self, column: str, span: TimeRange) -> _Where:
        for name, value, op in (("since", span.since, ">="), ("until", span.until, "<")):
            if value is not None:
                self.conditions.append(f"{column} {op} {{{name}:DateTime64(3, 'UTC')}}")
                self.parameters[name] = value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return self

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self.conditions)}" if self.conditions else ""


def _by(columns: list[str]) -> str:
    return "".join(f", {c}" for c in columns)


def funnel(definition: str | None, span: TimeRange, by: list[str]) -> Query:
    """Journeys that started in the range, per definition and stage reached (and `by`)."""
    where = _Where().equals("definition_id", "definition", definition)
    where.within("started_at", span)
    sql = f"""
SELECT definition_id AS definition, stage{_by(by)},
       count() AS journeys,
       countIf(status = 'converted') AS converted,
       countIf(dropped_here) AS dropped_here,
       round(quantileExactIf(0.5)(since_previous_ms, since_previous_ms IS NOT NULL) / 60000, 1)
           AS median_minutes_from_previous
FROM journey_stages
{where.sql()}
GROUP BY definition, stage{_by(by)}"""
    return Query(sql, where.parameters)


def adhoc_funnel(steps: list[Step], window: timedelta, span: TimeRange) -> Query:
    """Persons by how many of `steps` they took in order within `window` (windowFunnel),
    among their touchpoints in the range; the caller adds up 'reached at least step k'."""
    where = _Where(["latest_person_id != ''"]).within("occurred_at", span)
    conditions = []
    for n, step in enumerate(steps):
        where.parameters[f"event_type_{n}"] = step.event_type
        condition = f"event_type = {{event_type_{n}:String}}"
        if step.channel is not None:
            where.parameters[f"channel_{n}"] = step.channel
            condition = f"channel = {{channel_{n}:String}} AND {condition}"
        conditions.append(f"({condition})")
    where.parameters["window_ms"] = int(window.total_seconds() * 1000)
    sql = f"""
SELECT level, count() AS persons
FROM (
    SELECT latest_person_id,
           windowFunnel({{window_ms:UInt64}})(
               toUInt64(toUnixTimestamp64Milli(occurred_at)), {", ".join(conditions)}
           ) AS level
    FROM touchpoints_latest
    {where.sql()}
    GROUP BY latest_person_id
)
GROUP BY level"""
    return Query(sql, where.parameters)


def dropoffs(definition: str | None, stage: str | None, span: TimeRange, by: list[str]) -> Query:
    """Standing drop-offs in the range, per definition and stage (and `by`): the rows of
    `dropoff_paths` (those whose journey is stored), read without their paths. The stage
    channel is the one the drop-off recorded; rows written before it had one (empty) take the
    journey's, whose stages are read for those rows only."""
    where = _Where(["journey_id IN (SELECT journey_id FROM journeys)"])
    where.equals("definition_id", "definition", definition)
    where.equals("stage", "stage", stage).within("dropped_at", span)
    unrecorded = _Where([*where.conditions, "stage_channel = ''"])
    sql = f"""
SELECT definition_id AS definition, stage{_by(by)},
       count() AS dropped,
       countIf(friction > 0) AS with_friction,
       round(quantileExact(0.5)(dateDiff('millisecond', stage_entered_at, last_event_at))
             / 60000, 1) AS median_minutes_in_stage
FROM (
    SELECT d.definition_id AS definition_id, d.stage AS stage, d.reason AS reason,
           d.last_channel AS last_channel, toDate(d.dropped_at) AS day, d.friction AS friction,
           d.stage_entered_at AS stage_entered_at, d.last_event_at AS last_event_at,
           if(d.stage_channel != '', d.stage_channel,
              tupleElement(arrayFirst(s -> tupleElement(s, 1) = d.stage, j.stages), 3))
               AS stage_channel
    FROM (SELECT * FROM dropoffs_standing {where.sql()}) AS d
    LEFT JOIN (
        SELECT journey_id AS unrecorded_journey_id, stages FROM journeys FINAL
        WHERE journey_id IN (SELECT journey_id FROM dropoffs_standing {unrecorded.sql()})
    ) AS j ON j.unrecorded_journey_id = d.journey_id
)
GROUP BY definition, stage{_by(by)}"""
    return Query(sql, where.parameters)


def paths(definition: str | None, stage: str | None, span: TimeRange, limit: int) -> Query:
    """The most common paths (last touchpoints) before standing drop-offs, per stage: the
    SQL of `dropoff_paths`, narrowed to the drop-offs asked about before their touchpoints are
    joined."""
    where = _Where().equals("definition_id", "definition", definition)
    where.equals("stage", "stage", stage).within("dropped_at", span)
    sql = f"""
SELECT definition_id AS definition, stage, arrayStringConcat(path, ' > ') AS path,
       count() AS dropped,
       round(dropped / sum(dropped) OVER (PARTITION BY definition, stage), 3) AS share
FROM ({dropoff_paths_select(where.sql())})
GROUP BY definition, stage, path
ORDER BY definition, stage, dropped DESC, path
LIMIT {{limit:UInt32}} BY definition, stage"""
    return Query(sql, {**where.parameters, "limit": limit})


def switches(span: TimeRange, by: list[str]) -> Query:
    """Channel switches in the range, per pair of channels (and `by`)."""
    where = _Where().within("switched_at", span)
    sql = f"""
SELECT from_channel, to_channel{_by(by)},
       count() AS switches,
       countIf(after_friction) AS after_friction_count,
       round(after_friction_count / switches, 3) AS share_after_friction,
       round(quantileExact(0.5)(gap_ms) / 60000, 1) AS median_gap_minutes
FROM channel_switches
{where.sql()}
GROUP BY from_channel, to_channel{_by(by)}
ORDER BY switches DESC, from_channel, to_channel{_by(by)}"""
    return Query(sql, where.parameters)


def person_override(identifier: str) -> Query:
    """The person an identifier was last remapped to, if it ever was."""
    sql = """
SELECT argMax(person_id, version) AS person_id, argMax(remapped, version) AS remapped
FROM identity_overrides WHERE identifier = {identifier:String}
HAVING count() > 0"""
    return Query(sql, {"identifier": identifier})


def timeline(person_id: str, span: TimeRange) -> Query:
    """Everything about one person, in time order."""
    where = _Where().equals("person_id", "person", person_id).within("at", span)
    sql = f"""
SELECT at, kind, channel, what, touchpoint, identifiers, detail, ref
FROM person_timeline
{where.sql()}
ORDER BY at, kind, ref"""
    return Query(sql, where.parameters)


CATALOG_RECORDED = Query(
    "SELECT definition_id, version, stage, stage_index FROM journey_definitions FINAL"
)
# The (definition, stage) pairs of journey_stages, in the order first seen, for stages that
# journey_definitions lacks (Catalog.build adds only those). It reads the journeys themselves
# (journey_stages would resolve every journey's person first), and only when some stage of
# any stored journey version is not recorded: otherwise the scalar subquery, a few
# milliseconds over the table, leaves nothing to read and the answer is empty.
CATALOG_SEEN = Query("""
SELECT definition_id, tupleElement(reached, 1) AS stage
FROM journeys FINAL
ARRAY JOIN stages AS reached, arrayEnumerate(stages) AS position
WHERE status != 'merged'
  AND (
    SELECT count() FROM (
        SELECT DISTINCT definition_id AS stored_definition, arrayJoin(stages.1) AS stored_stage
        FROM journeys
    )
    WHERE (stored_definition, stored_stage) NOT IN (
        SELECT definition_id, stage FROM journey_definitions
    )
  ) > 0
GROUP BY definition_id, stage
ORDER BY definition_id, min(position), stage""")
DATA_SPAN = Query("SELECT min(occurred_at), max(occurred_at), count() FROM touchpoints")
