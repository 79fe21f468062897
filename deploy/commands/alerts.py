"""`journeys alerts list | show ID | silence SERIES|ROUTE | test ROUTE`: the friction and
drop-off alerts, as the stage published them, and their pages.

`list` and `show` read ClickHouse's `alerts` table through `sinks.clickhouse.reading()`, the
path every reader takes (the live interface of a running sink, else the folder itself), so
they work on a copy of a ClickHouse folder with no broker and after the topic's retention;
`--from kafka` reads the `alerts` topic instead (every version, the latest per alert kept).
`silence` writes a silence to the compacted `alert-silences` topic; `test` posts a sample
page to a route's targets through the webhook sender the stage uses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import orjson

from deploy.alerts.actions import run_silence, run_silences, run_test
from deploy.alerts.reader import AlertsReadError, read_clickhouse
from deploy.commands import EPILOG, SubParsers, examples
from deploy.commands.alerts_coverage import register_coverage
from deploy.query.answers import Answer
from deploy.query.formats import FORMATS, render
from schemas.settings import Settings
from stream_processors.friction.alerts.core.causes import place
from stream_processors.friction.alerts.core.records import AlertRecord

STATUSES = ("firing", "resolved", "retracted")


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    alerts = sub.add_parser(
        "alerts",
        help="friction and drop-off alerts",
        epilog=examples("alerts list --status firing", "alerts show 3f2a"),
    )
    asub = alerts.add_subparsers(title="actions", metavar="ACTION")
    ls = asub.add_parser(
        "list",
        help="recent alerts: status, series, start, team, observed vs expected",
        description="List the alerts the friction stage published (latest version of each), "
        "newest first: status, when it started, the owning team, the headline series with "
        "its observed and expected values, and how many other series it groups.",
        epilog="Examples: `journeys alerts list`, `journeys alerts list --status firing`. "
        + EPILOG,
    )
    ls.add_argument("--status", choices=STATUSES, help="only alerts with this status")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    _source_and_format(ls)
    ls.set_defaults(func=_list)
    show = asub.add_parser(
        "show",
        help="one alert in full: figures, cause, example journeys, related series",
        description="Print one alert's latest version in full (its likely cause, example "
        "journeys and every series it groups) and the history of its versions.",
        epilog="Example: `journeys alerts show 3f2a` (an id or a unique prefix). " + EPILOG,
    )
    show.add_argument("id", help="an alert id, or a unique prefix of one")
    _source_and_format(show)
    show.set_defaults(func=_show)
    silence = asub.add_parser(
        "silence",
        help="stop pages of a series or a route for a while",
        description="Write a silence: until it ends, pages whose series are all covered by it "
        "(a series glob '<kind> <scope> <name>' as `alerts list` prints it, or a route of the "
        "routing file by name) are not posted. The alerts are still published and stored.",
        epilog="Examples: `journeys alerts silence 'friction web:/checkout *' --for 2h --reason "
        "'payment provider maintenance'`, `journeys alerts silence sources --for 30m "
        "--reason deploy`. Durations: 30m, 2h, 1h30m, 1d. " + EPILOG,
    )
    silence.add_argument("target", metavar="SERIES|ROUTE", help="a series glob or a route name")
    silence.add_argument("--for", dest="duration", required=True, help="how long (30m, 2h, 1d)")
    silence.add_argument("--reason", required=True, help="why: shown wherever it is listed")
    silence.set_defaults(func=run_silence)
    silences = asub.add_parser(
        "silences",
        help="the silences in force (from ClickHouse), or lift one",
        description="List the silences that are in force (--all: every one ClickHouse holds), "
        "or lift one early: --lift ID writes it again ending now.",
        epilog="Examples: `journeys alerts silences`, `journeys alerts silences --all --format "
        "json`, `journeys alerts silences --lift 3f2a`. " + EPILOG,
    )
    silences.add_argument("--all", action="store_true", help="ended ones too")
    silences.add_argument("--lift", metavar="ID", help="end this silence now (an id or a prefix)")
    silences.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    silences.set_defaults(func=run_silences)
    test = asub.add_parser(
        "test",
        help="send a sample page to a route's targets",
        description="Post a sample firing page, as the stage would for a series of ROUTE "
        "(its runbook and dashboard links included), to each target of the route (webhook, "
        "Slack, PagerDuty), with the stage's retries; print what each answered. Nothing is "
        "written to Kafka or ClickHouse.",
        epilog="Examples: `journeys alerts test checkout-web`, `journeys alerts test default`. "
        + EPILOG,
    )
    test.add_argument("route", metavar="ROUTE", help="a route's name, route[N] or default")
    test.set_defaults(func=run_test)
    register_coverage(asub)


def _source_and_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        choices=("clickhouse", "kafka"),
        default="clickhouse",
        help="where to read the alerts (default: clickhouse)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")


def latest(records: Iterable[AlertRecord]) -> dict[str, AlertRecord]:
    """The latest version of each alert. Pure."""
    found: dict[str, AlertRecord] = {}
    for record in records:
        held = found.get(record.incident_id)
        if held is None or record.version > held.version:
            found[record.incident_id] = record
    return found


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


def _figures(r: AlertRecord) -> str:
    expected = "no baseline" if r.expected is None else f"{r.expected:.1f}"
    return f"{r.observed} vs {expected}"


def render_list(records: Sequence[AlertRecord], status: str | None, limit: int) -> str:
    chosen = [r for r in records if status is None or r.status == status]
    chosen.sort(key=lambda r: (r.started_at, r.incident_id), reverse=True)
    lines = [
        f"{'id':<8}  {'status':<9} {'started (UTC)':<16}  {'team':<16} {'severity':<8} "
        f"{'observed vs expected':<22} series"
    ]
    for r in chosen[:limit]:
        more = f" (+{len(r.related)} related)" if r.related else ""
        lines.append(
            f"{r.incident_id[:8]:<8}  {r.status:<9} {_when(r.started_at):<16}  "
            f"{(r.team or '-'):<16} {r.severity:<8} {_figures(r):<22} {r.series}{more}"
        )
    if not chosen:
        lines.append("(no alerts)")
    elif len(chosen) > limit:
        lines.append(f"... {len(chosen) - limit} more (--limit)")
    return "\n".join(lines)


def render_show(record: AlertRecord, history: Sequence[AlertRecord]) -> str:
    r = record
    lines = [
        f"alert {r.incident_id} (version {r.version})",
        f"  status      {r.status}"
        + (f", resolved {_when(r.resolved_at)}" if r.resolved_at else ""),
        f"  what        {r.kind.replace('_', ' ')} at {place(r.series)} ({r.series})",
        f"  severity    {r.severity}",
        f"  team        {r.team or '-'}" + (f" ({r.route})" if r.route else ""),
        f"  teams       {', '.join(r.teams) or '-'}"
        + (f"; paged before {', '.join(r.paged_before)}" if r.paged_before else ""),
        f"  started     {_when(r.started_at)} UTC; last alerting window "
        f"{_when(r.last_window_start)}-{r.last_window_end:%H:%M}, {r.windows} windows"
        + (
            f"; found late, {r.found_late_by / 3600:.1f} h after its first window" if r.late else ""
        ),
        f"  observed    {r.observed} (volume {r.volume}), expected "
        + ("no baseline yet" if r.expected is None else f"{r.expected:.1f}")
        + (f", p={r.p_value:.1e}" if r.p_value is not None else ""),
        f"  explanation {r.explanation}",
        f"  cause       {r.cause or '-'}",
        f"  examples ({len(r.examples)}):",
    ]
    for e in r.examples:
        when = datetime.fromtimestamp(e.at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        journey = f" journey {e.journey_id}" if e.journey_id else ""
        lines.append(
            f"    person {e.person_id}{journey}: {when} {e.channel} {e.touchpoint or '-'}: {e.what}"
        )
    lines.append(f"  related series ({len(r.related)}):")
    for rel in r.related:
        expected = "-" if rel.expected is None else f"{rel.expected:.1f}"
        lines.append(
            f"    {rel.status:<9} {rel.series}: {rel.observed} vs {expected} "
            f"since {_when(rel.started_at)}"
        )
    lines.append("  versions:")
    for h in sorted(history, key=lambda h: h.version):
        paged = (f" (paged {', '.join(h.page)})" if h.page else " (paged)") if h.notify else ""
        if h.change and h.change not in ("opened", "resolved", "retracted"):
            paged += f": {h.change}"
        lines.append(
            f"    v{h.version} {h.status}{paged}: {h.observed} vs "
            f"{'-' if h.expected is None else f'{h.expected:.1f}'}"
        )
    return "\n".join(lines)


LIST_COLUMNS = [
    "alert_id",
    "status",
    "started_at",
    "team",
    "severity",
    "observed",
    "expected",
    "series",
    "related",
    "teams",
    "version",
]


def list_answer(records: Sequence[AlertRecord], status: str | None, limit: int) -> Answer:
    """The rows of `alerts list --format json|csv`, newest first. Pure."""
    chosen = [r for r in records if status is None or r.status == status]
    chosen.sort(key=lambda r: (r.started_at, r.incident_id), reverse=True)
    rows = [
        (
            r.incident_id,
            r.status,
            r.started_at,
            r.team,
            r.severity,
            r.observed,
            r.expected,
            str(r.series),
            [str(rel.series) for rel in r.related],
            list(r.teams),
            r.version,
        )
        for r in chosen[:limit]
    ]
    return Answer(LIST_COLUMNS, rows)


def _read(settings: Settings, source: str = "kafka") -> list[AlertRecord]:
    if source == "clickhouse":
        return read_clickhouse(settings)  # no journeys data: one line from `journeys`
    from deploy.kafka_admin import check_kafka
    from schemas.topics import Topics
    from stream_processors.runtime.topic_reader import read_to_end

    check_kafka(settings)
    topic = Topics.from_settings(settings.topics).alerts
    return [
        AlertRecord.from_dict(orjson.loads(m.value()))
        for m in read_to_end(settings.kafka, topic)
        if m.value() is not None
    ]


def _list(settings: Settings, args: argparse.Namespace) -> int:
    try:
        found = list(latest(_read(settings, args.source)).values())
    except AlertsReadError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    if args.format == "table":
        print(render_list(found, args.status, args.limit))
    else:
        print(render(list_answer(found, args.status, args.limit), args.format))
    return 0


def _show(settings: Settings, args: argparse.Namespace) -> int:
    try:
        records = _read(settings, args.source)
    except AlertsReadError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    found = latest(records)
    matches = [aid for aid in found if aid.startswith(args.id)]
    if len(matches) != 1:
        what = "no alert" if not matches else f"{len(matches)} alerts"
        print(f"{what} with id {args.id!r}" + (": " + ", ".join(matches[:5]) if matches else ""))
        return 1
    aid = matches[0]
    history = sorted((r for r in records if r.incident_id == aid), key=lambda r: r.version)
    if args.format == "json":
        print(orjson.dumps(found[aid].to_dict(), option=orjson.OPT_INDENT_2).decode())
    elif args.format == "csv":
        print(render(_versions(history), "csv"))
    else:
        print(render_show(found[aid], history))
    return 0


def _versions(history: Sequence[AlertRecord]) -> Answer:
    columns = ["version", "status", "notify", "page", "change", "observed", "expected"]
    rows = [
        (h.version, h.status, h.notify, list(h.page), h.change, h.observed, h.expected)
        for h in history
    ]
    return Answer(columns, rows)
