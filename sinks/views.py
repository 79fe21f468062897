"""The views analysts read, over the tables of `sinks/tables.py`, and the statements they need.

`VIEWS` lists statements in the order they depend on each other. The first makes the table
`journey_definitions` (`sinks/definitions.py`: filled from the definition files, not from a
topic), which the journey views join for stage order; every other entry is a
`CREATE OR REPLACE VIEW`: a view fixes its columns when it is made, so the migration re-creates
every one after the tables change. docs/queries.md says what each view answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sinks import definitions

# How many touchpoints before a drop-off `dropoff_paths` keeps, and how long before a channel
# switch friction counts as its cause in `channel_switches`. Fixed in the views so that every
# reader means the same by "the path before" and "after friction"; change them here.
PATH_LENGTH = 5
FRICTION_WINDOW_MINUTES = 60

# A touchpoint's identifiers as `type:value`, the form `journeys identity show` takes.
_IDENTIFIERS = (
    "arrayFilter(x -> x != '', ["
    + ", ".join(
        f"if(isNull(identity.{kind}), '', concat('{kind}:', assumeNotNull(identity.{kind})))"
        for kind in (
            "customer_id",
            "loyalty_id",
            "email_hash",
            "phone_hash",
            "device_id",
            "anonymous_id",
        )
    )
    + "])"
)


def dropoff_paths_select(where: str = "") -> str:
    """The SELECT of `dropoff_paths` over the standing drop-offs that `where` (a WHERE clause
    on `dropoffs_standing`'s columns) keeps: `journeys query paths` narrows it to the
    definition, stage and range asked before any touchpoint is joined.

    The person's touchpoints are the probe side of the join, the drop-offs its build side, so
    memory grows with the drop-offs asked about, not with every touchpoint. The stage channel
    is the one the drop-off recorded; rows written before it had one take the journey's."""
    return f"""
SELECT d.dropoff_id AS dropoff_id, d.journey_id AS journey_id,
       d.definition_id AS definition_id, d.definition_version AS definition_version,
       j.latest_person_id AS person_id, d.stage AS stage,
       if(d.stage_channel != '', d.stage_channel,
          tupleElement(arrayFirst(s -> tupleElement(s, 1) = d.stage, j.stages), 3))
           AS stage_channel,
       d.stage_entered_at AS stage_entered_at, d.dropped_at AS dropped_at,
       toDate(d.dropped_at) AS day, d.reason AS reason, d.failure_stage AS failure_stage,
       d.last_channel AS last_channel, d.last_touchpoint AS last_touchpoint,
       d.last_event_at AS last_event_at, d.friction AS friction, d.signals AS signals,
       p.last_touchpoints AS last_touchpoints,
       arrayMap(x -> concat(tupleElement(x, 2), ':', tupleElement(x, 3)), p.last_touchpoints)
           AS path
FROM (SELECT * FROM dropoffs_standing {where}) AS d
INNER JOIN (
    SELECT journey_id AS standing_journey_id, stages, started_at, latest_person_id
    FROM journeys_latest
) AS j ON j.standing_journey_id = d.journey_id
LEFT JOIN (
    SELECT w.dropoff_id AS path_dropoff_id,
           arraySlice(
               arraySort(x -> (tupleElement(x, 1), tupleElement(x, 5)),
                         groupArray((t.occurred_at, t.channel, t.event_type,
                                     ifNull(t.touchpoint, ''), toString(t.event_id)))),
               -{PATH_LENGTH}) AS with_ids,
           arrayMap(x -> (tupleElement(x, 1), tupleElement(x, 2), tupleElement(x, 3),
                          tupleElement(x, 4)), with_ids) AS last_touchpoints
    FROM touchpoints_latest AS t
    INNER JOIN (
        SELECT d2.dropoff_id AS dropoff_id, d2.dropped_at AS dropped_at,
               j2.started_at AS started_at, j2.latest_person_id AS person_id
        FROM (SELECT dropoff_id, journey_id, dropped_at FROM dropoffs_standing {where}) AS d2
        INNER JOIN journeys_latest AS j2 ON j2.journey_id = d2.journey_id
    ) AS w ON w.person_id = t.latest_person_id
    WHERE t.occurred_at >= w.started_at AND t.occurred_at <= w.dropped_at
    GROUP BY w.dropoff_id
    SETTINGS query_plan_join_swap_table = 'false'
) AS p ON p.path_dropoff_id = d.dropoff_id
"""


VIEWS = {
    definitions.TABLE: definitions.DDL,
    "touchpoints_latest": """
CREATE OR REPLACE VIEW touchpoints_latest AS
SELECT t.*,
       if(o.identifier = '', t.person_id, o.person_id) AS latest_person_id
FROM touchpoints AS t FINAL
LEFT JOIN (
    SELECT identifier, argMax(person_id, version) AS person_id
    FROM identity_overrides
    GROUP BY identifier
) AS o ON o.identifier = t.person_key
""",
    # Only touchpoints whose identifier has an override are looked up: any other one still
    # has the person it was stamped with, and so does the journey it started (see below).
    "journeys_latest": """
CREATE OR REPLACE VIEW journeys_latest AS
SELECT j.*,
       if(r.latest_person_id = '', j.person_id, r.latest_person_id) AS latest_person_id
FROM journeys AS j FINAL
LEFT JOIN (
    SELECT t.started_journey_id AS resolved_journey_id, p.latest_person_id AS latest_person_id
    FROM (
        SELECT journey_id AS started_journey_id, argMin(event_id, at) AS started_by
        FROM journey_transitions FINAL
        WHERE from_stage IS NULL AND NOT retracted
        GROUP BY journey_id
    ) AS t
    INNER JOIN (
        SELECT toString(event_id) AS started_by, latest_person_id FROM touchpoints_latest
        WHERE person_key IN (SELECT identifier FROM identity_overrides)
    ) AS p ON p.started_by = t.started_by
) AS r ON r.resolved_journey_id = j.journey_id
""",
    "dropoffs_standing": """
CREATE OR REPLACE VIEW dropoffs_standing AS
SELECT * FROM dropoffs FINAL WHERE NOT retracted
""",
    # One row per journey and stage it reached, with where (stage_channel) and how long after
    # the stage before; merged journeys live on in the journey they were folded into.
    "journey_stages": """
CREATE OR REPLACE VIEW journey_stages AS
SELECT s.*, d.stage_index AS stage_index
FROM (
    SELECT journey_id, definition_id, definition_version, latest_person_id AS person_id,
           status, started_at, toDate(started_at) AS day,
           tupleElement(stages[1], 3) AS first_channel,
           tupleElement(reached, 1) AS stage,
           tupleElement(reached, 2) AS reached_at,
           tupleElement(reached, 3) AS stage_channel,
           n AS position,
           if(n > 1, tupleElement(stages[n - 1], 1), NULL) AS previous_stage,
           if(n > 1, dateDiff('millisecond', tupleElement(stages[n - 1], 2),
                              tupleElement(reached, 2)), NULL) AS since_previous_ms,
           toBool(status = 'dropped_off' AND n = length(stages)) AS dropped_here
    FROM journeys_latest
    ARRAY JOIN stages AS reached, arrayEnumerate(stages) AS n
    WHERE status != 'merged'
) AS s
LEFT JOIN (SELECT definition_id, version, stage, stage_index FROM journey_definitions FINAL) AS d
    ON d.definition_id = s.definition_id AND d.version = s.definition_version
   AND d.stage = s.stage
""",
    "funnel_daily": """
CREATE OR REPLACE VIEW funnel_daily AS
SELECT definition_id, day, first_channel, stage_index, stage, stage_channel,
       count() AS journeys,
       countIf(status = 'converted') AS converted,
       countIf(dropped_here) AS dropped_here
FROM journey_stages
GROUP BY definition_id, day, first_channel, stage_index, stage, stage_channel
""",
    "time_between_stages": """
CREATE OR REPLACE VIEW time_between_stages AS
SELECT definition_id, previous_stage AS from_stage, stage AS to_stage, stage_index,
       count() AS journeys,
       quantileExact(0.5)(since_previous_ms) / 60000 AS median_minutes,
       quantileExact(0.9)(since_previous_ms) / 60000 AS p90_minutes,
       avg(since_previous_ms) / 60000 AS mean_minutes
FROM journey_stages
WHERE previous_stage IS NOT NULL
GROUP BY definition_id, from_stage, to_stage, stage_index
""",
    # Each standing drop-off with the channel its stage was reached on and the person's last
    # touchpoints (any channel, any journey) from the journey's start to the drop-off.
    "dropoff_paths": "CREATE OR REPLACE VIEW dropoff_paths AS" + dropoff_paths_select(),
    # A person's consecutive touchpoints on two channels. after_friction: friction shortly
    # before the switch, stated on a touchpoint (contract v2) or counted in a session that
    # ended then (the friction mapping, applied by the journeys stage).
    "channel_switches": f"""
CREATE OR REPLACE VIEW channel_switches AS
SELECT c.person_id AS person_id, c.from_channel AS from_channel, c.to_channel AS to_channel,
       c.from_at AS from_at, c.switched_at AS switched_at, toDate(c.switched_at) AS day,
       dateDiff('millisecond', c.from_at, c.switched_at) AS gap_ms,
       c.from_event_type AS from_event_type, c.from_touchpoint AS from_touchpoint,
       c.to_event_type AS to_event_type, c.to_touchpoint AS to_touchpoint,
       toBool(c.stated_friction_before
           OR (f.friction_ended_at >= c.switched_at - INTERVAL {FRICTION_WINDOW_MINUTES} MINUTE
               AND f.friction_ended_at > toDateTime64(0, 3, 'UTC'))) AS after_friction
FROM (
    SELECT latest_person_id AS person_id,
           lagInFrame(channel) OVER w AS from_channel, channel AS to_channel,
           lagInFrame(occurred_at) OVER w AS from_at, occurred_at AS switched_at,
           lagInFrame(event_type) OVER w AS from_event_type, event_type AS to_event_type,
           lagInFrame(ifNull(touchpoint, '')) OVER w AS from_touchpoint,
           ifNull(touchpoint, '') AS to_touchpoint,
           row_number() OVER w AS position,
           max(notEmpty(friction)) OVER (
               PARTITION BY latest_person_id ORDER BY toUnixTimestamp64Milli(occurred_at)
               RANGE BETWEEN {FRICTION_WINDOW_MINUTES * 60_000} PRECEDING AND 1 PRECEDING
           ) = 1 AS stated_friction_before
    FROM touchpoints_latest
    WHERE latest_person_id != ''
    WINDOW w AS (PARTITION BY latest_person_id ORDER BY occurred_at, event_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
) AS c
ASOF LEFT JOIN (
    SELECT m.latest_person_id AS friction_person_id, s.ended_at AS friction_ended_at
    FROM sessions AS s FINAL
    INNER JOIN (
        SELECT person_id AS stamped_person_id, any(latest_person_id) AS latest_person_id
        FROM touchpoints_latest GROUP BY person_id
    ) AS m ON m.stamped_person_id = s.person_id
    WHERE s.friction > 0
) AS f ON f.friction_person_id = c.person_id AND f.friction_ended_at <= c.switched_at
WHERE c.position > 1 AND c.from_channel != c.to_channel
""",
    # Everything known about a person, in time order: touchpoints with the identifiers they
    # carried, identity merges, moves and refusals, stages reached, journey outcomes, standing
    # drop-offs, and alerts that name the person among their examples.
    "person_timeline": f"""
CREATE OR REPLACE VIEW person_timeline AS
SELECT latest_person_id AS person_id, occurred_at AS at, 'touchpoint' AS kind, channel,
       toString(event_type) AS what, ifNull(touchpoint, '') AS touchpoint,
       {_IDENTIFIERS} AS identifiers,
       toString(source) AS detail, toString(event_id) AS ref
FROM touchpoints_latest WHERE latest_person_id != ''
UNION ALL
SELECT arrayJoin(arrayDistinct(arrayConcat([a.person_id], a.old_person_ids))) AS person_id,
       toDateTime64(a.event_time, 3, 'UTC') AS at, 'identity' AS kind, '' AS channel,
       concat(a.kind, ' (', a.rule, ')', if(a.retracted, ' retracted', '')) AS what,
       '' AS touchpoint, a.identifiers AS identifiers,
       concat(arrayStringConcat(a.old_person_ids, ', '), ' -> ', a.person_id,
              if(a.detail = '', '', concat(': ', a.detail))) AS detail,
       toString(a.record_id) AS ref
FROM identity_audit AS a FINAL
UNION ALL
SELECT person_id, reached_at AS at, 'stage' AS kind, stage_channel AS channel,
       concat(definition_id, ': reached ', stage) AS what, '' AS touchpoint,
       [] AS identifiers, '' AS detail, journey_id AS ref
FROM journey_stages
UNION ALL
SELECT latest_person_id AS person_id, assumeNotNull(ended_at) AS at, 'journey' AS kind,
       '' AS channel, concat(definition_id, ': ', status, ' at ', stage) AS what,
       '' AS touchpoint, [] AS identifiers,
       concat('started ', toString(started_at), ', channels ', arrayStringConcat(channels, ', '))
           AS detail,
       journey_id AS ref
FROM journeys_latest WHERE ended_at IS NOT NULL AND status != 'merged'
UNION ALL
SELECT person_id, dropped_at AS at, 'dropoff' AS kind, last_channel AS channel,
       concat(definition_id, ': dropped off at ', stage, ' (', reason, ')') AS what,
       ifNull(last_touchpoint, '') AS touchpoint, [] AS identifiers,
       arrayStringConcat(signals, ', ') AS detail, dropoff_id AS ref
FROM dropoff_paths
UNION ALL
SELECT tupleElement(e, 'person_id') AS person_id,
       fromUnixTimestamp64Milli(toInt64(round(tupleElement(e, 'at') * 1000)), 'UTC') AS at,
       'alert' AS kind, tupleElement(e, 'channel') AS channel,
       concat(a.kind, ' ', a.status, ': ', a.series_name) AS what,
       ifNull(tupleElement(e, 'touchpoint'), '') AS touchpoint, [] AS identifiers,
       tupleElement(e, 'what') AS detail, a.incident_id AS ref
FROM alerts AS a FINAL
ARRAY JOIN a.examples AS e
""",
}
"""`touchpoints_latest` resolves every touchpoint to its person's latest id: the override of
the identifier that routed it, if it ever changed person, else the person stamped at
processing time (which then is still right: see docs/stages/identity.md). `journeys_latest`
does the same for journeys, through the event that started each one: the stage carries a
person's journeys over when a merge arrives while it still holds them, but a customer may log
in days after a journey ended and was forgotten. It looks up only the starting touchpoints
whose identifier (person_key) has an identity_overrides row: an identifier without one never
changed person, so it still names the person routing stamped on the event, which started the
journey under that person, and a journey changes person only by a merge, which gives each of
the merged person's identifiers an override. So for every other journey the event's latest
person is the journey's own person_id, and the view reads a few percent of the touchpoints
instead of all of them (tests/unit/sinks/test_views_over_merges.py checks it against the
lookup of every touchpoint). Its joined columns are named apart from the journey's, so it
keeps the table's names (`journey_id`, not `` `j.journey_id` ``).
`dropoffs_standing` is the drop-offs that no retraction cancelled. The analysts' views over
them are described in docs/queries.md."""


@dataclass(frozen=True)
class ViewDoc:
    """What a view is (its ClickHouse `COMMENT`) and what its columns mean. A view's column
    comments cannot be written in its `CREATE VIEW ... AS SELECT` without spelling out every
    column's type, and `CREATE OR REPLACE` drops them, so `migrate` sets them after making the
    view (`ALTER TABLE view COMMENT COLUMN`). `over` names a table whose comments the view's
    columns of the same name take (they pass through unchanged); `columns` says the rest, and
    what differs."""

    comment: str
    columns: dict[str, str]
    over: str | None = None


_LATEST_PERSON = (
    "The person's id under the latest identity records: the newest identity_overrides row of "
    "the identifier that routed the event (person_key), else the stamped person_id."
)
_DAY = "The UTC date of {}, for daily breakdowns."

VIEW_DOCS = {
    "touchpoints_latest": ViewDoc(
        "Every touchpoint (FINAL) with latest_person_id, its person under the latest identity "
        "records: query persons here, not by touchpoints.person_id.",
        {"latest_person_id": _LATEST_PERSON},
        over="touchpoints",
    ),
    "journeys_latest": ViewDoc(
        "The latest version of every journey (FINAL) with latest_person_id, the latest person "
        "of the event that started it; columns named as in journeys.",
        {
            "latest_person_id": "The person's id under the latest identity records, through "
            "the event that started the journey; person_id when that event's person never "
            "changed."
        },
        over="journeys",
    ),
    "dropoffs_standing": ViewDoc(
        "The drop-offs that still stand: `FROM dropoffs FINAL WHERE NOT retracted`.",
        {
            "retracted": "Always false here: withdrawn drop-offs are left out.",
            "retraction_reason": "Always '' here.",
        },
        over="dropoffs",
    ),
    "journey_stages": ViewDoc(
        "One row per journey (not merged) and stage it reached, with where it was reached, "
        "how long after the stage before, and the stage's place in its definition.",
        {
            "person_id": "The journey's person under the latest identity records "
            "(journeys_latest.latest_person_id).",
            "status": "The journey's status now: open, converted, dropped_off or expired.",
            "day": _DAY.format("started_at"),
            "first_channel": "The channel of the event that started the journey.",
            "stage": "A stage the journey reached.",
            "reached_at": "When the event that reached it happened (event time, UTC, ms).",
            "stage_channel": "The channel of that event: where the stage was reached.",
            "position": "Its place among the stages this journey reached, from 1 (stages may "
            "be skipped, so it can differ from stage_index).",
            "previous_stage": "The stage this journey reached before; NULL at its first.",
            "since_previous_ms": "ms from reaching previous_stage to reaching this stage; NULL "
            "at the first.",
            "dropped_here": "true when the journey dropped off and this is the last stage it "
            "reached.",
            "stage_index": "The stage's position in its definition (journey_definitions: the "
            "ordered path from 1, then failure stages); 0 when that definition version is not "
            "recorded.",
        },
        over="journeys",
    ),
    "funnel_daily": ViewDoc(
        "The funnel: journeys per definition, start day, first channel and stage reached "
        "(with the stage's channel); order stages by stage_index.",
        {
            "definition_id": "The journey definition's id (journey_definitions.definition_id).",
            "day": _DAY.format("the journeys' start"),
            "first_channel": "The channel of the events that started the journeys.",
            "stage_index": "The stage's position in its definition; 0 when not recorded.",
            "stage": "The stage reached.",
            "stage_channel": "The channel of the events that reached it.",
            "journeys": "Journeys (not merged) that reached the stage.",
            "converted": "Of those, the journeys that converted (at the success stage, later).",
            "dropped_here": "Of those, the journeys that dropped off at this stage.",
        },
    ),
    "time_between_stages": ViewDoc(
        "How long journeys take from one stage they reached to the next one they reached, "
        "per definition.",
        {
            "definition_id": "The journey definition's id (journey_definitions.definition_id).",
            "from_stage": "The stage reached before (stages may be skipped, so not always the "
            "one before on the path).",
            "to_stage": "The stage reached next.",
            "stage_index": "to_stage's position in its definition; 0 when not recorded.",
            "journeys": "Journeys (not merged) that went from from_stage to to_stage.",
            "median_minutes": "The median time between reaching the two, in minutes.",
            "p90_minutes": "The 90th percentile of that time, in minutes.",
            "mean_minutes": "The mean of that time, in minutes.",
        },
    ),
    "dropoff_paths": ViewDoc(
        f"Every standing drop-off with where its stage was reached and the person's last "
        f"{PATH_LENGTH} touchpoints (any channel, any journey) from the journey's start to the "
        f"drop-off.",
        {
            "person_id": "The journey's person under the latest identity records "
            "(journeys_latest.latest_person_id).",
            "stage_channel": "The channel of the event that reached the stage the journey "
            "dropped off at (dropoffs.stage_channel; from journeys.stages for drop-offs written "
            "before that column).",
            "day": _DAY.format("dropped_at"),
            "last_touchpoints": f"The person's last {PATH_LENGTH} touchpoints from the "
            "journey's start to dropped_at, oldest first, as (occurred_at, channel, "
            "event_type, touchpoint or ''); other journeys' events included.",
            "path": "The same touchpoints as `<channel>:<event_type>`.",
        },
        over="dropoffs",
    ),
    "channel_switches": ViewDoc(
        "One row per touchpoint of a person on another channel than their touchpoint before "
        f"(across all their journeys), and whether friction came in the {FRICTION_WINDOW_MINUTES}"
        " minutes before.",
        {
            "person_id": "The person under the latest identity records "
            "(touchpoints_latest.latest_person_id).",
            "from_channel": "The channel of the person's touchpoint before.",
            "to_channel": "The channel switched to.",
            "from_at": "When the touchpoint before happened (event time, UTC, ms).",
            "switched_at": "When the touchpoint on to_channel happened (event time, UTC, ms).",
            "day": _DAY.format("switched_at"),
            "gap_ms": "ms from from_at to switched_at.",
            "from_event_type": "The event type of the touchpoint before.",
            "from_touchpoint": "Its touchpoint ('' when none).",
            "to_event_type": "The event type of the touchpoint on to_channel.",
            "to_touchpoint": "Its touchpoint ('' when none).",
            "after_friction": f"true when friction came in the {FRICTION_WINDOW_MINUTES} "
            "minutes before switched_at: stated on one of the person's touchpoints (contract "
            "v2), or counted in one of their sessions that ended then.",
        },
    ),
    "person_timeline": ViewDoc(
        "Everything known about a person, one row per thing that happened (kind; order by "
        "at): touchpoints, identity records, stages reached, journey outcomes, "
        "standing drop-offs and alerts naming them.",
        {
            "person_id": "The person under the latest identity records; an identity record "
            "also shows under each person it merged away.",
            "at": "When it happened (event time, UTC, ms).",
            "kind": "touchpoint, identity (a merge, move or refusal), stage (a stage reached), "
            "journey (an outcome), dropoff (a standing drop-off) or alert (one naming the "
            "person among its examples).",
            "channel": "The touchpoint's channel, the stage's channel, the drop-off's last "
            "channel or the alert example's; '' for identity and journey rows.",
            "what": "What happened, in words: the event type, `merge (link)`, `purchase: "
            "reached cart`, `purchase: converted at purchase`, `purchase: dropped off at cart "
            "(time_limit)`, `<alert kind> <status>: <series>`.",
            "touchpoint": "The touchpoint of a touchpoint, a drop-off (its last) or an alert "
            "example; '' otherwise.",
            "identifiers": "The identifiers a touchpoint carried, or those an identity record "
            "concerns, as `<type>:<value>`; empty otherwise.",
            "detail": "More: a touchpoint's source, `old persons -> new person` of an identity "
            "record, a journey's start and channels, a drop-off's signals, what an alert "
            "example met (its signals, or the drop-off).",
            "ref": "The id to look it up by: event_id, identity_audit.record_id, journey_id, "
            "dropoff_id or alerts.incident_id.",
        },
    ),
}
