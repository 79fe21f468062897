"""Analyst-scale journeys data, made inside ClickHouse by `INSERT ... SELECT` from `numbers()`.

Nothing is simulated event by event in Python: a plan of every journey is computed in one
statement (a Memory table, dropped at the end), and each table is filled from it. The shapes
come from the shipped definitions (`deploy/definitions/*.toml`: stage names, order, time
limits) and from the simulator's catalog (`producers/simulator/catalog.py`: the event types and
touchpoints each stage emits per channel, how many go on to the next stage, gaps of 5-60% of
the stage's time limit, a quarter of purchases in a store):

- persons have several journeys (about three each; 78% purchase, 22% support), and their
  device: 62% web, 38% app; calls and store visits come on top, so the four channels have
  uneven shares (printed by `channel_shares`);
- journeys start over `days` days, more in the evening than at night (`HOUR_WEIGHTS`);
- each journey has one touchpoint per stage it reached plus 1-7 browsing touchpoints (mostly
  on the person's device, some calls and store visits) between its start and an hour after its
  last stage; 3% of touchpoints state friction;
- a journey that stopped short of success has dropped off at its last stage once that stage's
  time limit passed before the data's end, else it is still open; 2% of drop-offs are
  retracted later (a newer version), 10% lack their stage channel (written before the
  column); journeys that moved on also have their earlier version
  (the sink writes every version: FINAL has to pick);
- 2.5% of persons were merged into another (identity_overrides), so the `*_latest` views
  re-resolve them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client

from producers.simulator.catalog import JOURNEYS, Journey
from schemas.definitions import DefinitionSpec, load_definitions
from sinks.definitions import record_definitions

DEFINITIONS = sorted(
    (Path(__file__).resolve().parents[2] / "deploy" / "definitions").glob("*.toml")
)
PLAN = "bench_plan"
# Journeys started per hour of the day (UTC), relative: quiet at night, busiest at 19-20 h.
HOUR_WEIGHTS = (
    3,
    2,
    1,
    1,
    1,
    2,
    4,
    7,
    10,
    12,
    13,
    14,
    14,
    13,
    13,
    13,
    14,
    16,
    18,
    19,
    18,
    14,
    9,
    5,
)
# Percent of journeys per definition, and of persons on the app.
DEFINITION_SHARES = {"purchase": 78, "support": 22}
APP_SHARE = 38
STORE_PURCHASE_SHARE = 25
# Percent of drop-offs written before dropoffs.stage_channel existed ('' there).
UNRECORDED_STAGE_CHANNEL = 10
SOURCES = {"web": "web-sdk", "app": "app-sdk", "call_center": "cc-export", "store": "pos-export"}


@dataclass(frozen=True)
class Scale:
    journeys: int = 2_000_000
    persons: int = 700_000
    days: int = 28
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * 86_400_000


def _literal(value: object) -> str:
    """A Python value (str, int, float, None, nested lists and tuples) as a ClickHouse literal."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ")"
    return repr(value)


def _journey_of(spec: DefinitionSpec) -> Journey:
    """The simulator's journey behind a shipped definition, checked to have its stage names."""
    journey = next(j for j in JOURNEYS if j.name == spec.id)
    names = [s.name for s in spec.ordered]
    if names != [s.name for s in journey.stages]:
        raise ValueError(f"{spec.id}: definition stages {names} differ from the simulator's")
    return journey


def _shapes(specs: Sequence[DefinitionSpec]) -> dict[str, str]:
    """Per definition (outer arrays, in `specs` order): stage names, time limits (ms, 0 for the
    last), conversion to the next stage (per mille) and the (channel, event type, touchpoint)
    options of each stage."""
    names, limits, conversions, options = [], [], [], []
    for spec in specs:
        journey = _journey_of(spec)
        names.append([s.name for s in spec.ordered])
        limits.append(
            [int(s.time_limit.total_seconds() * 1000) if s.time_limit else 0 for s in spec.ordered]
        )
        conversions.append([round(s.conversion * 1000) for s in journey.stages[:-1]])
        options.append(
            [
                [
                    (channel, event, point)
                    for channel, pairs in s.events.items()
                    for event, point in pairs
                ]
                for s in journey.stages
            ]
        )
    cumulative = [
        sum(DEFINITION_SHARES[spec.id] for spec in specs[: i + 1]) for i in range(len(specs))
    ]
    hours = [hour for hour, weight in enumerate(HOUR_WEIGHTS) for _ in range(weight)]
    return {
        "definitions": _literal([spec.id for spec in specs]),
        "names": _literal(names),
        "limits": _literal(limits),
        "conversions": _literal(conversions),
        "options": _literal(options),
        "hours": _literal(hours),
        "shares": _literal(cumulative),
    }


def plan_sql(scale: Scale, specs: Sequence[DefinitionSpec]) -> str:
    """One row per journey: who, which definition, when each stage it reached happened, on
    which channel with which event, how it ended, and how many browsing touchpoints it has."""
    s = _shapes(specs)
    return f"""
CREATE TABLE {PLAN} ENGINE = Memory AS
WITH
    {s["definitions"]} AS all_definitions,
    {s["names"]} AS all_names,
    {s["limits"]} AS all_limits,
    {s["conversions"]} AS all_conversions,
    {s["options"]} AS all_options,
    {s["hours"]} AS hours,
    arrayFirstIndex(t -> sipHash64(number, 'definition') % 100 < t, {s["shares"]}) AS d,
    sipHash64(number, 'person') % {scale.persons} AS p,
    if(sipHash64(p, 'device') % 100 < {APP_SHARE}, 'app', 'web') AS dev,
    arrayMap(i -> toUInt8(sipHash64(number, 'pass', i) % 1000 < all_conversions[d][i]),
             range(1, length(all_conversions[d]) + 1)) AS passes,
    if(has(passes, 0), indexOf(passes, 0), length(passes) + 1) AS r,
    {scale.start_ms}
        + toInt64(sipHash64(number, 'day') % {scale.days}) * 86400000
        + toInt64(hours[1 + sipHash64(number, 'hour') % length(hours)]) * 3600000
        + toInt64(sipHash64(number, 'ms') % 3600000) AS start_ms,
    arrayMap(k -> if(k = 1, 0,
                     intDiv(all_limits[d][k - 1] * (50 + sipHash64(number, 'gap', k) % 551), 1000)),
             range(1, r + 1)) AS gaps,
    arrayMap(x -> start_ms + x, arrayCumSum(gaps)) AS at_ms,
    arrayMap(k -> arrayDistinct(arrayMap(o -> o.1, all_options[d][k])), range(1, r + 1))
        AS allowed,
    arrayMap((a, k) -> if(has(a, dev),
                          if(has(a, 'store')
                             AND sipHash64(number, 'store') % 100 < {STORE_PURCHASE_SHARE},
                             'store', dev),
                          a[1]),
             allowed, range(1, r + 1)) AS chans,
    arrayMap((c, k) -> arrayFilter(o -> o.1 = c, all_options[d][k]), chans, range(1, r + 1))
        AS choices,
    arrayMap((c, k) -> c[1 + sipHash64(number, 'event', k) % length(c)], choices, range(1, r + 1))
        AS picked,
    length(all_names[d]) AS n,
    at_ms[r] + all_limits[d][r] AS limit_ms
SELECT
    number AS j,
    all_definitions[d] AS definition_id,
    p AS person,
    dev AS device,
    toUInt8(r) AS reached,
    arraySlice(all_names[d], 1, r) AS stage_names,
    at_ms AS stage_ms,
    chans AS stage_channels,
    arrayMap(o -> o.2, picked) AS stage_events,
    arrayMap(o -> o.3, picked) AS stage_touchpoints,
    multiIf(r = n, 'converted', limit_ms <= {scale.end_ms}, 'dropped_off', 'open') AS status,
    if(r = n, 0, limit_ms) AS dropped_ms,
    toUInt8(1 + sipHash64(number, 'filler') % 7) AS filler
FROM numbers({scale.journeys})
"""


def _uuid(*parts: str) -> str:
    """A deterministic UUID from the hash of `parts` (SQL expressions)."""
    return f"reinterpretAsUUID(sipHash128({', '.join(parts)}))"


def _ms(expression: str) -> str:
    return f"fromUnixTimestamp64Milli(toInt64({expression}), 'UTC')"


PERSON_ID = "toString(" + _uuid("'person'", "person") + ")"
JOURNEY_ID = "toString(" + _uuid("'journey'", "j") + ")"
# The k-th touchpoint of journey j (a fixed width: the hash reads the integers' bytes).
EVENT_ID = _uuid("j", "toUInt32(k)")


def touchpoints_sql() -> str:
    """Each journey's stage touchpoints (k <= reached), then its browsing ones, between its
    start and an hour after its last stage."""
    # 70% on the person's device, 8% on the other online channel, 12% calls, 10% the store.
    channel = (
        "multiIf(h % 100 < 70, device, h % 100 < 78, if(device = 'web', 'app', 'web'), "
        "h % 100 < 90, 'call_center', 'store')"
    )
    browse_event = (
        "multiIf(ch = 'call_center', 'contact_answered', ch = 'store', 'store_visit', 'page_view')"
    )
    browse_point = (
        "multiIf(ch = 'call_center', 'queue:support', ch = 'store', 'store:042', "
        "concat(if(ch = 'web', '/p/', 'screen/'), toString(h % 50)))"
    )
    browse_ms = "stage_ms[1] + toInt64(h % (stage_ms[reached] - stage_ms[1] + 3600000))"
    return f"""
INSERT INTO touchpoints
    (event_id, channel, source, event_type, schema_version, occurred_at, received_at, identity,
     session_id, touchpoint, properties, backfill, call_center, friction, person_id, person_key)
SELECT
    {EVENT_ID},
    if(stage, stage_channels[k], {channel}) AS ch,
    transform(ch, {_literal(list(SOURCES))}, {_literal(list(SOURCES.values()))}, 'bench'),
    if(stage, stage_events[k], {browse_event}),
    2,
    {_ms(f"if(stage, stage_ms[k], {browse_ms})")} AS occurred_at,
    occurred_at + INTERVAL 2 SECOND,
    tuple(concat('c-', toString(person)), NULL,
          if(ch = 'app', concat('dev-', toString(person)), NULL), NULL, NULL, NULL),
    if(ch IN ('web', 'app'), concat('s-', toString(j)), NULL),
    if(stage, stage_touchpoints[k], {browse_point}),
    if(stage AND stage_events[k] = 'contact_ended', map('disposition', 'resolved'),
       map('n', toString(h % 97))),
    false,
    if(ch = 'call_center', concat('{{"wait_seconds":', toString(20 + h % 220), '}}'), NULL),
    if(h % 1000 < 30, [('error', 'http_500', NULL)], []),
    {PERSON_ID},
    concat('customer_id:c-', toString(person))
FROM (
    SELECT *, k, k <= reached AS stage, sipHash64(j, k, 'touchpoint') AS h
    FROM {PLAN} ARRAY JOIN range(1, reached + filler + 1) AS k
)
"""


def _journey_columns(version: str, reached: str) -> str:
    """A journey row as of its first `reached` stages (an SQL expression)."""
    return f"""
    {JOURNEY_ID}, definition_id, 1, {PERSON_ID},
    if({reached} = reached, status, 'open'),
    stage_names[{reached}],
    {_ms("stage_ms[1]")},
    multiIf({reached} < reached, NULL,
            status = 'converted', {_ms("stage_ms[reached]")},
            status = 'dropped_off', {_ms("dropped_ms")}, NULL),
    arrayMap((s, t, c) -> (s, {_ms("t")}, c), arraySlice(stage_names, 1, {reached}),
             arraySlice(stage_ms, 1, {reached}), arraySlice(stage_channels, 1, {reached})),
    arrayDistinct(arraySlice(stage_channels, 1, {reached})),
    {reached} + if({reached} = reached, filler, 0),
    toUInt32(sipHash64(j, 'friction') % 100 < 8),
    if({reached} = reached AND status = 'converted', stage_ms[reached] - stage_ms[1], NULL),
    NULL, NULL, {version}"""


# A journey's version grows with every stage, and once more when it ends.
LATEST_VERSION = "reached + (status != 'open')"
JOURNEY_COLUMNS = (
    "journey_id, definition_id, definition_version, person_id, status, stage, started_at, "
    "ended_at, stages, channels, touchpoints, friction, time_to_convert_ms, hold, "
    "merged_into, version"
)


def journeys_sql() -> list[str]:
    """The version of each journey after its first stage (for those that went on), then the
    latest version: both stay in the table until a merge folds them, as the sink writes them."""
    return [
        f"INSERT INTO journeys ({JOURNEY_COLUMNS}) SELECT {_journey_columns('1', '1')} "
        f"FROM {PLAN} WHERE reached > 1",
        f"INSERT INTO journeys ({JOURNEY_COLUMNS}) SELECT "
        f"{_journey_columns(LATEST_VERSION, 'reached')} FROM {PLAN}",
    ]


def transitions_sql() -> str:
    """One transition per stage reached, made by that stage's touchpoint."""
    return f"""
INSERT INTO journey_transitions
    (transition_id, journey_id, definition_id, definition_version, person_id, from_stage,
     to_stage, at, channel, touchpoint, event_id, elapsed_ms, version, retracted)
SELECT
    toString({_uuid("'transition'", "j", "k")}), {JOURNEY_ID}, definition_id, 1, {PERSON_ID},
    if(k = 1, NULL, stage_names[k - 1]), stage_names[k], {_ms("stage_ms[k]")},
    stage_channels[k], stage_touchpoints[k], toString({EVENT_ID}),
    if(k = 1, NULL, stage_ms[k] - stage_ms[k - 1]), 1, false
FROM {PLAN} ARRAY JOIN range(1, reached + 1) AS k
"""


DROPOFF_COLUMNS = (
    "dropoff_id, journey_id, definition_id, definition_version, person_id, stage, "
    "stage_entered_at, dropped_at, reason, failure_stage, stage_channel, last_channel, "
    "last_touchpoint, "
    "last_event_at, friction, touchpoints, channels, signals, version, retracted, "
    "retraction_reason"
)


def dropoffs_sql() -> list[str]:
    """A drop-off per journey that dropped off, then a retraction (a newer version of the
    whole drop-off, retracted) for 2% of them. Some drop-offs lack their stage channel, as
    those written before the column was added do."""
    row = f"""
    toString({_uuid("'dropoff'", "j")}), {JOURNEY_ID}, definition_id, 1, {PERSON_ID},
    stage_names[reached], {_ms("stage_ms[reached]")}, {_ms("dropped_ms")}, 'time_limit', NULL,
    if(sipHash64(j, 'upgrade') % 100 < {UNRECORDED_STAGE_CHANNEL}, '', stage_channels[reached]),
    stage_channels[reached], stage_touchpoints[reached], {_ms("stage_ms[reached]")},
    toUInt32(sipHash64(j, 'friction') % 100 < 8), reached + filler, arrayDistinct(stage_channels),
    if(sipHash64(j, 'friction') % 100 < 8, ['http_500@web:/checkout'], [])"""
    return [
        f"INSERT INTO dropoffs ({DROPOFF_COLUMNS}) SELECT {row}, 1, false, '' "
        f"FROM {PLAN} WHERE status = 'dropped_off'",
        f"INSERT INTO dropoffs ({DROPOFF_COLUMNS}) SELECT {row}, 2, true, 'late_event' "
        f"FROM {PLAN} WHERE status = 'dropped_off' AND sipHash64(j, 'retract') % 100 < 2",
    ]


def overrides_sql(scale: Scale) -> str:
    """2.5% of persons merged into the next one: their identifier now names that person."""
    return f"""
INSERT INTO identity_overrides (identifier, person_id, remapped, version, published_at)
SELECT concat('customer_id:c-', toString(number)),
       toString({_uuid("'person'", "number + 1")}), true, 1, 0
FROM numbers({scale.persons}) WHERE number % 40 = 0
"""


def statements(scale: Scale, specs: Sequence[DefinitionSpec]) -> Iterable[tuple[str, str]]:
    """(what, SQL) in the order to run them."""
    yield "plan", plan_sql(scale, specs)
    yield "touchpoints", touchpoints_sql()
    for sql in journeys_sql():
        yield "journeys", sql
    yield "journey_transitions", transitions_sql()
    for sql in dropoffs_sql():
        yield "dropoffs", sql
    yield "identity_overrides", overrides_sql(scale)
    yield "plan dropped", f"DROP TABLE {PLAN}"


def generate(client: Client, scale: Scale) -> dict[str, float]:
    """Fill the (migrated, empty) database; returns seconds per step."""
    record_definitions(client, DEFINITIONS)
    specs = load_definitions(DEFINITIONS)
    seconds: dict[str, float] = {}
    for what, sql in statements(scale, specs):
        started = time.perf_counter()
        client.command(sql, settings={"max_insert_threads": 2})
        seconds[what] = seconds.get(what, 0.0) + time.perf_counter() - started
    return seconds


def table_rows(client: Client) -> dict[str, int]:
    """Rows per table as stored (every version), and journeys after FINAL."""
    rows = client.query(
        "SELECT table, sum(rows) FROM system.parts WHERE active AND database = currentDatabase() "
        "GROUP BY table"
    ).result_rows
    counts = {str(table): int(n) for table, n in rows}
    final = client.query("SELECT count() FROM journeys FINAL").result_rows[0][0]
    counts["journeys (FINAL)"] = int(final)
    return counts


def channel_shares(client: Client) -> dict[str, float]:
    """Each channel's share of the touchpoints."""
    rows = client.query(
        "SELECT channel, count() / (SELECT count() FROM touchpoints) FROM touchpoints "
        "GROUP BY channel ORDER BY 2 DESC"
    ).result_rows
    return {str(channel): float(share) for channel, share in rows}
