"""The Grafana dashboards of deploy/grafana/ against ClickHouse's HTTP interface.

Grafana cannot run here, so this does what its ClickHouse data source
(grafana-clickhouse-datasource) does with each query: the browser side expands
`$__conditionalAll(...)` and the dashboard's template variables, the plugin's backend then
expands its macros (`$__timeFilter(col)`, ...), and the SQL goes to the interface as the
read-only user the provisioning file names. The expansion below is written from the plugin's
documentation (its query editor and template variable pages) and checked against the outputs
the documentation shows, one test per macro. Every panel, variable and annotation query then
runs on the interface over a chDB folder with hand-made rows, and the funnel, drop-off and
alert panels must return the numbers worked out by hand from them.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr
from sqlalchemy import create_engine, inspect, text

from schemas.settings import SHIPPED_DEFINITIONS, ClickHouseHttpSettings, ClickHouseUser
from schemas.vocabulary import Channel
from sinks.clickhouse import migrate
from sinks.definitions import record_definitions
from sinks.http.server import HttpInterface

from .go_client import run_clickhouse_go
from .helpers import ROOT

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "journeys-clickhouse"}
PASSWORD = "dashboards-only"
READER = ClickHouseUser(name="grafana", password=SecretStr(PASSWORD), readonly=True)

# ---------------------------------------------------------------------------------------------
# The data source's expansion of a query, in the order it happens.

ALL = "$__all"  # what Grafana stores as a variable's value when "All" is selected

Value = str | list[str]


@dataclass(frozen=True)
class Variable:
    current: Value  # a list for a multi-value variable; [ALL] when "All" is selected
    options: tuple[str, ...] = ()  # every value: what "All" stands for


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    interval: timedelta  # the panel's interval, which Grafana works out from width and range


def expand(sql: str, variables: Mapping[str, Variable], span: TimeRange) -> str:
    """The SQL the data source sends for `sql`: `$__conditionalAll` first, then template
    variables (both in the browser, CHDatasource.applyTemplateVariables), then the macros
    (in the plugin's backend)."""
    return macros(template_variables(conditional_all(sql, variables), variables), span)


def _call_args(sql: str, open_paren: int, *, literals: bool = False) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose `(` is at `open_paren` and the index
    just past its `)`. Commas inside nested brackets belong to their argument; with `literals`
    (the backend's parser) so do those inside quoted strings, and arguments are trimmed."""
    args, depth, start, i = [], 0, open_paren + 1, open_paren
    while i < len(sql):
        char = sql[i]
        if literals and char in "'\"":
            i = sql.find(char, i + 1) + 1 or len(sql)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return ([a.strip() for a in args] if literals else args), i + 1
        elif char == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
        i += 1
    raise ValueError(f"unbalanced brackets after {sql[open_paren : open_paren + 40]!r}")


_VARIABLE_NAME = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+")


def conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    """`$__conditionalAll(condition, $var)`: the condition, or `1=1` when the variable's
    value is "All" or empty; the last call in the text first, as the plugin does."""
    macro = "$__conditionalAll("
    while (at := sql.rfind(macro)) != -1:
        args, end = _call_args(sql, at + len(macro) - 1)
        if len(args) != 2:
            return sql
        phrase = args[0]
        named = _VARIABLE_NAME.search(args[1].strip())
        if named and named.group(0) in variables:
            current = variables[named.group(0)].current
            value = ",".join(current) if isinstance(current, list) else current
            if value in ("", ALL):
                phrase = "1=1"
        sql = sql[:at] + phrase + sql[end:]
    return sql


_TEMPLATE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}")


def template_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    """Grafana's `$var`, `${var}` and `${var:singlequote}`; names that are not variables (the
    macros) stay. A list without a format becomes `'a','b'` (the plugin's own format)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            return match.group(0)
        variable = variables[name]
        current = variable.current
        if current in (ALL, [ALL]):
            current = list(variable.options)
        fmt = match.group(3)
        if fmt == "singlequote":
            values = current if isinstance(current, list) else [current]
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        if fmt is not None:
            raise ValueError(f"format {fmt} is not expanded here: add it")
        return "'" + "','".join(current) + "'" if isinstance(current, list) else current

    return _TEMPLATE.sub(value, sql)


def _date_time(moment: datetime) -> str:
    return f"toDateTime({int(moment.timestamp())})"


def _date_time64(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(moment.timestamp() * 1000)})"


def _date(moment: datetime) -> str:
    return f"toDate('{moment.astimezone(UTC):%Y-%m-%d}')"


def _seconds(span: TimeRange) -> int:
    return int(max(span.interval.total_seconds(), 1))


def _between(column: str, low: str, high: str) -> str:
    return f"{column} >= {low} AND {column} <= {high}"


def _duration(text: str) -> timedelta:
    """A Go duration such as `5m`, `1h30m` or `90s` ($__timeGroup's period)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.fullmatch(r"(?:\d+(?:ms|s|m|h))+", text) and re.findall(r"(\d+)(ms|s|m|h)", text)
    if not parts:
        raise ValueError(f"not a duration: {text}")
    return timedelta(seconds=sum(int(n) * units[unit] for n, unit in parts))


MACROS: dict[str, Any] = {
    # name: (number of arguments, expansion)
    "timeFilter": (1, lambda s, c: _between(c, _date_time(s.start), _date_time(s.end))),
    "timeFilter_ms": (1, lambda s, c: _between(c, _date_time64(s.start), _date_time64(s.end))),
    "dateFilter": (1, lambda s, c: _between(c, _date(s.start), _date(s.end))),
    "dateTimeFilter": (
        2,
        lambda s, d, t: (
            f"({_between(d, _date(s.start), _date(s.end))}) AND "
            f"({_between(t, _date_time(s.start), _date_time(s.end))})"
        ),
    ),
    "timeFrom": (1, lambda s, c: f"{c} >= {_date_time(s.start)}"),
    "timeTo": (1, lambda s, c: f"{c} <= {_date_time(s.end)}"),
    "timeGroup": (
        2,
        lambda s, c, p: (
            f"toStartOfInterval(toDateTime({c.strip()}), INTERVAL "
            f"{round(_duration(p.strip().strip(chr(39) + chr(34))).total_seconds())} second)"
        ),
    ),
    "fromTime": (0, lambda s: _date_time(s.start)),
    "toTime": (0, lambda s: _date_time(s.end)),
    "fromTime_ms": (0, lambda s: _date_time64(s.start)),
    "toTime_ms": (0, lambda s: _date_time64(s.end)),
    "interval_s": (0, lambda s: str(_seconds(s))),
    "timeInterval": (
        1,
        lambda s, c: f"toStartOfInterval(toDateTime({c}), INTERVAL {_seconds(s)} second)",
    ),
    "timeInterval_ms": (
        1,
        lambda s, c: (
            "toStartOfInterval(toDateTime64("
            f"{c}, 3), INTERVAL {int(max(s.interval.total_seconds() * 1000, 1))} millisecond)"
        ),
    ),
}
MACROS["dt"] = MACROS["dateTimeFilter"]

_MACRO = re.compile(r"\$__(\w+)")


def macros(sql: str, span: TimeRange) -> str:
    """The backend's macros (pkg/macros in the plugin); one it does not know stays as it is."""
    out, at = [], 0
    while (found := _MACRO.search(sql, at)) is not None:
        out.append(sql[at : found.start()])
        name, at = found.group(1), found.end()
        if name not in MACROS:
            out.append(found.group(0))
            continue
        arity, expansion = MACROS[name]
        args: list[str] = []
        if arity:
            if at >= len(sql) or sql[at] != "(":
                raise ValueError(f"$__{name} takes {arity} argument(s)")
            args, at = _call_args(sql, at, literals=True)
            if len(args) != arity:
                raise ValueError(f"$__{name} expected {arity} argument(s), received {len(args)}")
        out.append(expansion(span, *args))
    return "".join(out) + sql[at:]


# ---------------------------------------------------------------------------------------------
# The expansion, checked against the plugin documentation's output examples.

DOC_SPAN = TimeRange(
    datetime.fromtimestamp(1415792726.123, UTC),
    datetime.fromtimestamp(1447328726.456, UTC),
    timedelta(seconds=20),
)


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        (
            "$__timeFilter(time)",
            "time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)",
        ),
        (
            "$__timeFilter_ms(time)",
            "time >= fromUnixTimestamp64Milli(1415792726123) AND "
            "time <= fromUnixTimestamp64Milli(1447328726456)",
        ),
        ("$__dateFilter(date)", "date >= toDate('2014-11-12') AND date <= toDate('2015-11-12')"),
        (
            "$__dateTimeFilter(date, time)",
            "(date >= toDate('2014-11-12') AND date <= toDate('2015-11-12')) AND "
            "(time >= toDateTime(1415792726) AND time <= toDateTime(1447328726))",
        ),
        (
            "$__dt(date,time)",
            "(date >= toDate('2014-11-12') AND date <= toDate('2015-11-12')) AND "
            "(time >= toDateTime(1415792726) AND time <= toDateTime(1447328726))",
        ),
        ("$__timeFrom(time)", "time >= toDateTime(1415792726)"),
        ("$__timeTo(time)", "time <= toDateTime(1447328726)"),
        ("$__timeGroup(column, 5m)", "toStartOfInterval(toDateTime(column), INTERVAL 300 second)"),
        ("$__fromTime", "toDateTime(1415792726)"),
        ("$__toTime", "toDateTime(1447328726)"),
        ("$__fromTime_ms", "fromUnixTimestamp64Milli(1415792726123)"),
        ("$__toTime_ms", "fromUnixTimestamp64Milli(1447328726456)"),
        ("$__interval_s", "20"),
        ("$__timeInterval(column)", "toStartOfInterval(toDateTime(column), INTERVAL 20 second)"),
        (
            "$__timeInterval_ms(column)",
            "toStartOfInterval(toDateTime64(column, 3), INTERVAL 20000 millisecond)",
        ),
    ],
)
def test_each_macro_expands_as_the_plugin_documents(macro: str, expected: str) -> None:
    assert macros(f"WHERE {macro} LIMIT 1", DOC_SPAN) == f"WHERE {expected} LIMIT 1"


def test_macros_nest_and_leave_unknown_names_alone() -> None:
    sql = "SELECT $__timeInterval(toDateTime64(at, 3)) AS t, $__unknown, '$__nope'"
    assert macros(sql, DOC_SPAN) == (
        "SELECT toStartOfInterval(toDateTime(toDateTime64(at, 3)), INTERVAL 20 second) AS t, "
        "$__unknown, '$__nope'"
    )
    with pytest.raises(ValueError, match="expected 1 argument"):
        macros("$__timeFilter(a, b)", DOC_SPAN)


CHANNEL_OPTIONS = tuple(c.value for c in Channel)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ([ALL], "WHERE 1=1 AND d = 'purchase'"),
        ("", "WHERE 1=1 AND d = 'purchase'"),
        (["web"], "WHERE c IN ('web') AND d = 'purchase'"),
        (["app", "call_center"], "WHERE c IN ('app','call_center') AND d = 'purchase'"),
    ],
)
def test_conditional_all_and_template_variables(current: Value, expected: str) -> None:
    variables = {
        "channel": Variable(current, CHANNEL_OPTIONS),
        "definition": Variable("purchase"),
    }
    sql = "WHERE $__conditionalAll(c IN (${channel:singlequote}), $channel) AND d = '$definition'"
    assert expand(sql, variables, DOC_SPAN) == expected


def test_template_variable_formats() -> None:
    variables = {
        "v": Variable(["a", "o'b"]),
        "all": Variable([ALL], ("x", "y")),
        "s": Variable("z"),
    }
    assert template_variables("$v|${v}|${v:singlequote}", variables) == (
        "'a','o'b'|'a','o'b'|'a','o\\'b'"
    )
    assert template_variables(
        "${all:singlequote} $s ${s} $__timeFilter(x) $unknown", variables
    ) == ("'x','y' z z $__timeFilter(x) $unknown")


# ---------------------------------------------------------------------------------------------
# The dashboards' files.


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every SQL text a dashboard runs, with a name for it: panels, variables, annotations."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']} ({target['refId']})", target["rawSql"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]["rawSql"]
    for annotation in dashboard["annotations"]["list"]:
        if "target" in annotation:
            yield f"annotation {annotation['name']}", annotation["target"]["rawSql"]


ALL_QUERIES = [
    pytest.param(path.name, sql, id=f"{path.stem}: {name}")
    for path in DASHBOARDS
    for name, sql in queries(load(path))
]


def _provisioned(path: Path, key: str) -> str:
    found = re.search(rf"^\s*-?\s*{key}:\s*(\S+)\s*$", path.read_text(), re.M)
    assert found, f"{path.name} has no {key}"
    return found.group(1).strip("\"'")


def test_the_provisioning_files_name_the_data_source_and_the_dashboards() -> None:
    source = GRAFANA / "provisioning" / "datasources" / "journeys.yaml"
    assert {key: _provisioned(source, key) for key in ("uid", "type", "protocol", "port")} == {
        "uid": DATASOURCE["uid"],
        "type": DATASOURCE["type"],
        "protocol": "http",
        "port": "8123",
    }
    assert _provisioned(source, "username") == READER.name
    provider = GRAFANA / "provisioning" / "dashboards" / "journeys.yaml"
    assert _provisioned(provider, "type") == "file"
    assert {p.stem for p in DASHBOARDS} == {"funnel", "dropoffs", "alerts", "freshness"}


def _overlap(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_each_dashboard_is_well_formed(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["uid"].startswith("journeys-") and dashboard["title"] and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    grids = [panel["gridPos"] for panel in dashboard["panels"]]
    for panel, grid in zip(dashboard["panels"], grids, strict=True):
        assert set(grid) == {"h", "w", "x", "y"} and all(isinstance(v, int) for v in grid.values())
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["title"] and panel["description"], panel["id"]
        targets = panel.get("targets", [])
        assert targets or panel["type"] == "text", panel["title"]
        if targets:
            assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in targets:
            assert target["datasource"] == DATASOURCE and target["editorType"] == "sql"
            assert (target["format"], target["queryType"]) in {(0, "timeseries"), (1, "table")}
            assert (target["queryType"] == "timeseries") == (panel["type"] == "timeseries")
        assert len({t["refId"] for t in targets}) == len(targets)
    for i, a in enumerate(grids):
        assert not any(_overlap(a, b) for b in grids[i + 1 :]), f"panels overlap at {a}"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
        if variable["name"] == "channel":  # the four channels, as the contract spells them
            assert variable["query"].split(",") == list(CHANNEL_OPTIONS)
    for annotation in dashboard["annotations"]["list"]:
        if "target" in annotation:
            assert annotation["datasource"] == DATASOURCE


def test_dashboard_uids_are_unique() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))


# ---------------------------------------------------------------------------------------------
# Hand-made rows. On 2026-03-02 (DAY) four purchase journeys start: j1 on web converts
# through all five stages; j2 starts on app and drops off at cart, reached on web; j3 starts on
# web and drops off at consider, reached on app; j4 (web) is still open. j5 started before the
# range, j6 was merged into another journey: neither counts. j1 had a drop-off that a late
# event retracted. Alerts: a1 fires (critical, team web-shop, two versions), a2 resolved
# (warning, no team), a3 was retracted.

DAY = datetime(2026, 3, 2, tzinfo=UTC)
SPAN = TimeRange(DAY - timedelta(days=1), DAY + timedelta(days=6), timedelta(hours=1))


def at(days: int, hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hour, minutes=minute)


def journey(jid: str, status: str, stages: list[tuple[str, datetime, str]]) -> dict[str, Any]:
    return {
        "journey_id": jid,
        "definition_id": "purchase",
        "definition_version": 1,
        "person_id": f"p-{jid}",
        "status": status,
        "stage": stages[-1][0],
        "started_at": stages[0][1],
        "stages": stages,
        "channels": sorted({c for _s, _t, c in stages}),
        "version": 1,
    }


STAGES = ["discover", "consider", "cart", "checkout", "purchase"]
JOURNEYS = [
    journey("j1", "converted", [(s, at(0, 9, 10 * n), "web") for n, s in enumerate(STAGES)]),
    journey(
        "j2",
        "dropped_off",
        [
            ("discover", at(0, 10), "app"),
            ("consider", at(0, 10, 30), "web"),
            ("cart", at(0, 11), "web"),
        ],
    ),
    journey("j3", "dropped_off", [("discover", at(0, 12), "web"), ("consider", at(0, 13), "app")]),
    journey("j4", "open", [("discover", at(0, 14), "web")]),
    journey("j5", "open", [("discover", at(-10, 9), "call_center")]),
    journey("j6", "merged", [("discover", at(0, 15), "web")]),
]


def dropoff(did: str, jid: str, stage: str, dropped: datetime, **more: Any) -> dict[str, Any]:
    return {
        "dropoff_id": did,
        "journey_id": jid,
        "definition_id": "purchase",
        "definition_version": 1,
        "person_id": f"p-{jid}",
        "stage": stage,
        "stage_entered_at": dropped - timedelta(days=1),
        "dropped_at": dropped,
        "last_event_at": dropped - timedelta(hours=20),
        "reason": "time_limit",
        "version": 1,
        "retracted": False,
        **more,
    }


DROPOFFS = [
    dropoff(
        "d2",
        "j2",
        "cart",
        at(1, 11),
        stage_channel="web",
        last_channel="web",
        friction=2,
        signals=["slow_page@web:/cart", "error@web:/cart"],
    ),
    dropoff(
        "d3",
        "j3",
        "consider",
        at(2, 13),
        stage_channel="app",
        last_channel="app",
        friction=1,
        signals=["error@web:/cart"],
    ),
    dropoff("d1", "j1", "checkout", at(0, 10, 30), stage_channel="web", last_channel="web"),
    dropoff(
        "d1",
        "j1",
        "checkout",
        at(0, 10, 30),
        stage_channel="web",
        last_channel="web",
        version=2,
        retracted=True,
    ),
]

# j2's person: (time, channel, event type); the path before its drop-off is all four.
P2_TOUCHPOINTS = [
    (at(0, 10), "app", "home_view"),
    (at(0, 10, 30), "web", "product_view"),
    (at(0, 11), "web", "add_to_cart"),
    (at(0, 11, 5), "web", "page_view"),
]


def touchpoint(
    n: int, when: datetime, channel: str, event_type: str, person: str
) -> dict[str, Any]:
    return {
        "event_id": UUID(int=n + 1),
        "channel": channel,
        "source": f"{channel}-source",
        "event_type": event_type,
        "occurred_at": when,
        "received_at": when + timedelta(seconds=30),
        "identity": (None, f"anon-{person}", None, None, None, None),
        "person_id": person,
        "person_key": f"anonymous_id:anon-{person}",
    }


def alert(
    incident: str, version: int, status: str, started: datetime, **more: Any
) -> dict[str, Any]:
    return {
        "incident_id": incident,
        "version": version,
        "status": status,
        "kind": "friction_spike",
        "series_kind": "friction",
        "series_name": "web:/cart",
        "started_at": started,
        "last_window_end": started + timedelta(minutes=5 * version),
        "severity": "warning",
        **more,
    }


ALERTS = [
    alert("a1", 1, "firing", at(1, 11), severity="critical", team="web-shop", windows=1),
    alert("a1", 2, "firing", at(1, 11), severity="critical", team="web-shop", windows=3),
    alert("a2", 1, "firing", at(0, 14)),
    alert("a2", 2, "resolved", at(0, 14), resolved_at=at(0, 15)),
    alert("a3", 1, "retracted", at(0, 16), team="web-shop"),
]


def insert(client: Client, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Each row with its own columns; the table's defaults fill the rest."""
    for row in rows:
        client.insert(table, [list(row.values())], column_names=list(row))


def fill(client: Client) -> None:
    record_definitions(client, sorted(SHIPPED_DEFINITIONS.glob("*.toml")))
    insert(client, "journeys", JOURNEYS)
    insert(client, "dropoffs", DROPOFFS)
    insert(client, "alerts", ALERTS)
    now = datetime.now(UTC)
    rows = [touchpoint(n, *spec, "p-j2") for n, spec in enumerate(P2_TOUCHPOINTS)]
    rows.append(touchpoint(99, now - timedelta(minutes=1), "app", "screen_view", "p-live"))
    insert(client, "touchpoints", rows)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpInterface]:
    """The interface over a folder holding the rows above, with the dashboards' user."""
    folder = tmp_path_factory.mktemp("grafana") / "clickhouse"
    settings = ClickHouseHttpSettings(port=0, users=[ClickHouseUser(name="default"), READER])
    interface = HttpInterface(folder, settings).start()
    try:
        writer = clickhouse_connect.get_client(host="127.0.0.1", port=interface.port)
        migrate(writer)
        fill(writer)
        writer.close()
        yield interface
    finally:
        interface.stop()  # chDB holds one folder per process: later tests open others


@pytest.fixture(scope="module")
def reader(served: HttpInterface) -> Iterator[Client]:
    """clickhouse-connect's HTTP client as the read-only user the data source connects as."""
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=served.port, username=READER.name, password=PASSWORD
    )
    yield client
    client.close()


# Selections of the dashboards' variables each query runs with: every channel ("All"), one,
# and two; definitions and teams likewise.
SELECTIONS: dict[str, dict[str, Value]] = {
    "all": {"definition": "purchase", "channel": [ALL], "team": [ALL], "severity": [ALL]},
    "one": {
        "definition": "purchase",
        "channel": ["web"],
        "team": ["web-shop"],
        "severity": ["critical"],
    },
    "two": {
        "definition": "support",
        "channel": ["app", "call_center"],
        "team": ["unrouted", "web-shop"],
        "severity": ["warning", "critical"],
    },
}


def variables_of(
    client: Client, dashboard: Mapping[str, Any], chosen: Mapping[str, Value]
) -> dict[str, Variable]:
    """The dashboard's variables with `chosen` selected; a query variable's options are what its
    query returns (as Grafana fills the drop-down), a custom one's are its listed values."""
    found = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            sql = expand(variable["query"]["rawSql"], {}, SPAN)
            options = tuple(str(row[0]) for row in client.query(sql).result_rows)
        else:
            options = tuple(variable["query"].split(","))
        found[variable["name"]] = Variable(chosen[variable["name"]], options)
    return found


@pytest.mark.parametrize("selection", sorted(SELECTIONS))
@pytest.mark.parametrize(("file", "sql"), ALL_QUERIES)
def test_every_query_runs_as_the_read_only_user(
    reader: Client, file: str, sql: str, selection: str
) -> None:
    dashboard = load(GRAFANA / "dashboards" / file)
    expanded = expand(sql, variables_of(reader, dashboard, SELECTIONS[selection]), SPAN)
    assert "$" not in expanded, expanded  # every macro and variable was expanded
    reader.query(expanded)


def panel_rows(
    client: Client, file: str, title: str, selection: str = "all"
) -> list[tuple[Any, ...]]:
    dashboard = load(GRAFANA / "dashboards" / file)
    (panel,) = [p for p in dashboard["panels"] if p["title"] == title]
    sql = expand(
        panel["targets"][0]["rawSql"], variables_of(client, dashboard, SELECTIONS[selection]), SPAN
    )
    return [tuple(row) for row in client.query(sql).result_rows]


def test_variables_list_what_the_tables_hold(reader: Client) -> None:
    funnel = variables_of(reader, load(GRAFANA / "dashboards" / "funnel.json"), SELECTIONS["all"])
    assert funnel["definition"].options == ("purchase", "support")
    alerts = variables_of(reader, load(GRAFANA / "dashboards" / "alerts.json"), SELECTIONS["all"])
    assert alerts["team"].options == ("unrouted", "web-shop")


def test_funnel_panels_count_the_journeys_inserted(reader: Client) -> None:
    assert panel_rows(reader, "funnel.json", "Journeys reaching each stage") == [
        ("discover", 4, 1, 0),
        ("consider", 3, 1, 1),
        ("cart", 2, 1, 1),
        ("checkout", 1, 1, 0),
        ("purchase", 1, 1, 0),
    ]
    assert panel_rows(reader, "funnel.json", "Journeys reaching each stage", "one") == [
        ("discover", 3, 1, 0),
        ("consider", 2, 1, 1),
        ("cart", 1, 1, 0),
        ("checkout", 1, 1, 0),
        ("purchase", 1, 1, 0),
    ]
    assert panel_rows(reader, "funnel.json", "Share of the first stage") == [
        ("discover", 100.0),
        ("consider", 75.0),
        ("cart", 50.0),
        ("checkout", 25.0),
        ("purchase", 25.0),
    ]
    # stage, web, app, call_center, store (j5 started on call_center before the range)
    assert panel_rows(reader, "funnel.json", "Stages reached, by first channel") == [
        ("discover", 3, 1, 0, 0),
        ("consider", 2, 1, 0, 0),
        ("cart", 1, 1, 0, 0),
        ("checkout", 1, 0, 0, 0),
        ("purchase", 1, 0, 0, 0),
    ]
    assert panel_rows(reader, "funnel.json", "Conversion by first channel") == [
        ("web", 3, 1, 1, 33.3),
        ("app", 1, 0, 1, 0.0),
    ]
    assert panel_rows(reader, "funnel.json", "Outcomes of journeys started") == [
        (4, 1, 1, 2, 0, 25.0)
    ]
    started = panel_rows(reader, "funnel.json", "Journeys started, by first channel")
    assert sum(row[2] for row in started) == 4
    daily = panel_rows(reader, "funnel.json", "Journeys reaching each stage, per day")
    assert [(row[1], row[2]) for row in daily] == [
        ("discover", 4),
        ("consider", 3),
        ("cart", 2),
        ("checkout", 1),
        ("purchase", 1),
    ]
    between = panel_rows(reader, "funnel.json", "Time between stages")
    assert [row[:4] for row in between] == [
        ("discover", "consider", 3, 30.0),  # j1 10 min, j2 30, j3 60
        ("consider", "cart", 2, 30.0),  # j1 10, j2 30: quantileExact takes the upper middle
        ("cart", "checkout", 1, 10.0),
        ("checkout", "purchase", 1, 10.0),
    ]


def test_dropoff_panels_count_the_standing_dropoffs_inserted(reader: Client) -> None:
    assert panel_rows(reader, "dropoffs.json", "Drop-offs in the range") == [(2, 1)]
    assert panel_rows(reader, "dropoffs.json", "Drop-offs in the range", "one") == [(1, 1)]
    trend = panel_rows(reader, "dropoffs.json", "Drop-offs by stage")
    assert [(row[0].replace(tzinfo=UTC), row[1], row[2]) for row in trend] == [
        (at(1, 11), "cart", 1),
        (at(2, 13), "consider", 1),
    ]
    # stage (in the definition's order), web, app, call_center, store: where the stage was reached
    assert panel_rows(reader, "dropoffs.json", "Drop-offs by stage and stage channel") == [
        ("consider", 0, 1, 0, 0),
        ("cart", 1, 0, 0, 0),
    ]
    assert panel_rows(reader, "dropoffs.json", "Drop-offs by stage and stage channel", "one") == [
        ("cart", 1, 0, 0, 0)
    ]
    assert panel_rows(reader, "dropoffs.json", "Top friction signals before drop-off") == [
        ("error@web:/cart", 2),
        ("slow_page@web:/cart", 1),
    ]
    table = panel_rows(
        reader, "dropoffs.json", "Drop-offs by stage, stage channel and last channel"
    )
    assert [row[:5] for row in table] == [
        ("cart", "web", "web", 1, 1),
        ("consider", "app", "app", 1, 1),
    ]
    assert panel_rows(reader, "dropoffs.json", "Most common paths before drop-off") == [
        ("cart", "app:home_view > web:product_view > web:add_to_cart > web:page_view", 1),
        ("consider", "", 1),
    ]


def test_alert_panels_count_the_alerts_inserted(reader: Client) -> None:
    assert panel_rows(reader, "alerts.json", "Firing now") == [(1,)]
    assert panel_rows(reader, "alerts.json", "Firing now", "two") == [(1,)]
    firing = panel_rows(reader, "alerts.json", "Firing alerts")
    assert [(row[1], row[2], row[6]) for row in firing] == [("critical", "web-shop", 3)]
    assert panel_rows(reader, "alerts.json", "Alerts by team and severity") == [
        ("unrouted", 0, 1),
        ("web-shop", 1, 0),
    ]
    timeline = panel_rows(reader, "alerts.json", "Alert timeline")
    assert [(row[2], row[7]) for row in timeline][1:] == [("retracted", 5.0), ("resolved", 60.0)]


def test_freshness_panels_measure_against_now(reader: Client) -> None:
    ((event_age,),) = panel_rows(
        reader, "freshness.json", "Newest touchpoint: event time behind now"
    )
    ((received_age,),) = panel_rows(
        reader, "freshness.json", "Newest touchpoint: received behind now"
    )
    assert 0 <= received_age <= event_age < 600
    tables = {
        row[0]: row[1]
        for row in panel_rows(reader, "freshness.json", "Tables: rows and last write")
    }
    # A merge may fold the alerts' versions together; touchpoints have distinct event ids.
    assert tables["touchpoints"] == 5 and 3 <= tables["alerts"] <= 5


# The data source's client is clickhouse-go over HTTP: it POSTs the query as the body with
# `default_format=Native`, `client_protocol_version` (its protocol revision) and
# `max_execution_time` (from the query timeout) as parameters, basic auth over plain HTTP,
# `Accept-Encoding: gzip`; it opens every connection with this hello query.
HELLO = "SELECT displayName(), version(), revision(), timezone()"
CLIENT_REVISION = 54460


def _as_the_data_source(interface: HttpInterface, query: str) -> tuple[int, dict[str, str], bytes]:
    credentials = base64.b64encode(f"{READER.name}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{interface.url}/?database=default&max_execution_time=65&default_format=Native"
        f"&client_protocol_version={CLIENT_REVISION}",
        data=query.encode(),
        headers={"Authorization": f"Basic {credentials}", "Accept-Encoding": "gzip"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()


def test_the_data_sources_requests_are_answered(served: HttpInterface) -> None:
    firing = load(GRAFANA / "dashboards" / "alerts.json")["panels"][0]["targets"][0]["rawSql"]
    everything = {"team": Variable([ALL]), "severity": Variable([ALL])}
    for query in (HELLO, expand(firing, everything, SPAN)):
        status, headers, body = _as_the_data_source(served, query)
        assert (status, headers["x-clickhouse-format"]) == (200, "Native") and body


def test_native_blocks_come_at_the_clients_protocol_revision(served: HttpInterface) -> None:
    _, _, body = _as_the_data_source(served, HELLO)
    # BlockInfo first (field 1 is_overflows = 0, field 2 bucket_num = -1, end), then 4 columns
    assert body.startswith(bytes.fromhex("01 00 02 ff ff ff ff 00 04 01"))


def test_grafanas_client_runs_every_panel_and_reads_what_clickhouse_connect_reads(
    served: HttpInterface, reader: Client
) -> None:
    """clickhouse-go over HTTP, with the options Grafana's data source uses, runs every query of
    every dashboard (one line each) and reads the same rows as clickhouse-connect."""
    expanded = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dashboard = load(path)
        chosen = variables_of(reader, dashboard, SELECTIONS["all"])
        expanded += [" ".join(expand(sql, chosen, SPAN).split()) for _, sql in queries(dashboard)]
    results = run_clickhouse_go(f"127.0.0.1:{served.port}", READER.name, PASSWORD, expanded)
    assert len(results) == len(expanded)
    funnel = " ".join(
        expand(
            next(
                p["targets"][0]["rawSql"]
                for p in load(GRAFANA / "dashboards" / "funnel.json")["panels"]
                if p["title"] == "Journeys reaching each stage"
            ),
            variables_of(reader, load(GRAFANA / "dashboards" / "funnel.json"), SELECTIONS["all"]),
            SPAN,
        ).split()
    )
    (got,) = run_clickhouse_go(f"127.0.0.1:{served.port}", READER.name, PASSWORD, [funnel])
    want = [[str(value) for value in row] for row in reader.query(funnel).result_rows]
    assert got.rows == want and want


def test_supersets_sqlalchemy_uri_lists_the_tables_and_reads(served: HttpInterface) -> None:
    """Superset connects through clickhouse-connect's SQLAlchemy dialect with the URI
    docs/bi-tools.md gives, browses schemas, tables, views and columns, and runs SQL."""
    engine = create_engine(
        f"clickhousedb://{READER.name}:{PASSWORD}@127.0.0.1:{served.port}/default"
    )
    try:
        browse = inspect(engine)
        assert "default" in browse.get_schema_names()
        assert {"touchpoints", "dropoffs", "alerts"} <= set(browse.get_table_names("default"))
        assert {"funnel_daily", "dropoff_paths"} <= set(browse.get_view_names("default"))
        assert "stage_channel" in {
            c["name"] for c in browse.get_columns("dropoff_paths", "default")
        }
        with engine.connect() as connection:
            got = connection.execute(text("SELECT count() FROM dropoffs_standing")).all()
        assert [tuple(row) for row in got] == [(2,)]
    finally:
        engine.dispose()
