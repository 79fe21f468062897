"""`journeys query funnel | dropoffs | paths | switches | person | sql`: the analysts'
questions, answered from ClickHouse (the views of sinks/views.py, docs/queries.md) as a table,
JSON or CSV. Works while the pipeline runs (through the sink's live interface) and without
a broker; the logic is in `deploy.query`, this module only wires the command line to it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from clickhouse_connect.driver.client import Client

from deploy.commands import SubParsers, examples
from deploy.query import answers, questions
from deploy.query.answers import Answer
from deploy.query.catalog import Catalog
from deploy.query.formats import FORMATS, render
from deploy.query.options import (
    QueryError,
    TimeRange,
    breakdown_columns,
    parse_steps,
    parse_window,
)
from deploy.query.reader import ask, open_journeys
from schemas.settings import Settings

Handler = Callable[[Settings, argparse.Namespace], int]


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    query = sub.add_parser(
        "query",
        help="funnels, drop-offs, paths, channel switches and persons, from ClickHouse",
        description="Answer the analysts' questions from ClickHouse, while the pipeline runs "
        "or after. Times are event times in UTC; --from is inclusive, --to exclusive.",
        epilog=examples("query funnel --definition purchase --by stage_channel"),
    )
    qsub = query.add_subparsers(title="questions", metavar="QUESTION")
    _funnel(qsub)
    _dropoffs(qsub)
    _paths(qsub)
    _switches(qsub)
    _person(qsub)
    _sql(qsub)


def _common(p: argparse.ArgumentParser, span: bool = True) -> None:
    if span:
        p.add_argument("--from", dest="since", metavar="TIME", help="from this event time")
        p.add_argument("--to", dest="until", metavar="TIME", help="up to this event time")
    p.add_argument("--format", choices=FORMATS, default="table", help="default: table")


def _add(
    qsub: SubParsers[argparse.ArgumentParser], name: str, text: str, *example: str
) -> argparse.ArgumentParser:
    return qsub.add_parser(name, help=text, description=text + ".", epilog=examples(*example))


def _by(p: argparse.ArgumentParser, names: dict[str, str]) -> None:
    p.add_argument(
        "--by",
        action="append",
        metavar="NAME",
        help=f"break down by {', '.join(sorted(names))} (repeat or separate by commas)",
    )


def _funnel(qsub: SubParsers[argparse.ArgumentParser]) -> None:
    p = _add(
        qsub,
        "funnel",
        "journeys reaching each stage of a definition, started in the range; or, with "
        "--steps, persons taking any sequence of events in order (ClickHouse's windowFunnel)",
        "query funnel",
        "query funnel --definition purchase --by channel --from 2026-01-05 --to 2026-01-07",
        "query funnel --steps web:home_view,web:add_to_cart,*:order_completed --window 2d",
    )
    p.add_argument("--definition", help="one definition (default: every one)")
    p.add_argument("--steps", help="an ad-hoc funnel: CHANNEL:EVENT_TYPE,... (* = any channel)")
    p.add_argument("--window", default="7d", help="with --steps: time from first to last step")
    _by(p, questions.FUNNEL_BREAKDOWNS)
    _common(p)
    p.set_defaults(func=_guarded(_run_funnel))


def _dropoffs(qsub: SubParsers[argparse.ArgumentParser]) -> None:
    p = _add(
        qsub,
        "dropoffs",
        "standing drop-offs (no retraction withdrew them) per definition and stage, dropped "
        "in the range; stage_channel is where the stage was reached, channel the last one used",
        "query dropoffs",
        "query dropoffs --definition purchase --by stage_channel --format json",
    )
    p.add_argument("--definition", help="one definition (default: every one)")
    p.add_argument("--stage", help="one stage")
    _by(p, questions.DROPOFF_BREAKDOWNS)
    _common(p)
    p.set_defaults(func=_guarded(_run_dropoffs))


def _paths(qsub: SubParsers[argparse.ArgumentParser]) -> None:
    p = _add(
        qsub,
        "paths",
        "the most common paths before a drop-off: the person's last touchpoints "
        "(channel:event_type, any journey) from the journey's start to the drop-off",
        "query paths --definition purchase --stage cart",
    )
    p.add_argument("--definition", help="one definition (default: every one)")
    p.add_argument("--stage", help="one stage")
    p.add_argument("--limit", type=int, default=10, help="paths per stage (default 10)")
    _common(p)
    p.set_defaults(func=_guarded(_run_paths))


def _switches(qsub: SubParsers[argparse.ArgumentParser]) -> None:
    p = _add(
        qsub,
        "switches",
        "channel switches (a person's next touchpoint on another channel) per pair of "
        "channels, and how many followed friction within the hour before",
        "query switches",
        "query switches --by day --from 2026-01-05",
    )
    _by(p, questions.SWITCH_BREAKDOWNS)
    _common(p)
    p.set_defaults(func=_guarded(_run_switches))


def _person(qsub: SubParsers[argparse.ArgumentParser]) -> None:
    p = _add(
        qsub,
        "person",
        "one person's timeline across channels: touchpoints with their identifiers, identity "
        "merges, stages reached, journey outcomes, drop-offs and alerts, in time order",
        "query person customer_id:c-42",
        "query person <person uuid> --format json",
    )
    p.add_argument("id", help="an identifier as TYPE:VALUE, or a person id (UUID)")
    _common(p)
    p.set_defaults(func=_guarded(_run_person))


def _sql(qsub: SubParsers[argparse.ArgumentParser]) -> None:
    p = _add(
        qsub,
        "sql",
        "run one read-only SQL statement (tables and views: docs/queries.md)",
        "query sql 'SELECT stage, sum(journeys) FROM funnel_daily GROUP BY stage'",
    )
    p.add_argument("statement", help="a SELECT (or SHOW, DESCRIBE) statement")
    _common(p, span=False)
    p.set_defaults(func=_guarded(_run_sql))


def _guarded(handler: Handler) -> Handler:
    """A question that cannot be answered is one line on stderr and exit code 2."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return handler(settings, args)
        except QueryError as exc:
            print(f"journeys: error: {exc}", file=sys.stderr)
            return 2

    return run


def _asked_by(args: argparse.Namespace) -> list[str]:
    return [name.strip() for given in args.by or [] for name in given.split(",") if name.strip()]


def _catalog(client: Client) -> Catalog:
    recorded = ask(client, questions.CATALOG_RECORDED).rows
    seen = ask(client, questions.CATALOG_SEEN).rows
    return Catalog.build(recorded, seen)


def _nothing(client: Client, what: str, span: TimeRange) -> QueryError:
    """The error for an empty answer, saying which times the data holds."""
    if not span.bounded:
        return QueryError(f"no {what} in ClickHouse yet")
    first, last, count = ask(client, questions.DATA_SPAN).rows[0]
    held = (
        f"touchpoints from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
        if count
        else "no touchpoints"
    )
    return QueryError(f"no {what} {span.describe()}; ClickHouse holds {held}")


def _show(answer: Answer, args: argparse.Namespace) -> int:
    print(render(answer, args.format))
    return 0


def _run_funnel(settings: Settings, args: argparse.Namespace) -> int:
    span = TimeRange.parse(args.since, args.until)
    if args.steps is not None:
        steps, window = parse_steps(args.steps), parse_window(args.window)
        if args.by or args.definition:
            raise QueryError("--steps is a funnel of its own: drop --by and --definition")
        with open_journeys(settings.clickhouse_dsn) as client:
            levels = ask(client, questions.adhoc_funnel(steps, window, span)).rows
            answer = answers.adhoc_funnel(steps, levels)
            if not answer.rows[0][2]:
                raise _nothing(client, f"persons with {steps[0]}", span)
        return _show(answer, args)
    by = breakdown_columns(_asked_by(args), questions.FUNNEL_BREAKDOWNS, "funnel")
    with open_journeys(settings.clickhouse_dsn) as client:
        catalog = _catalog(client)
        catalog.check_definition(args.definition)
        answer = ask(client, questions.funnel(args.definition, span, by))
        if not answer.rows:
            raise _nothing(client, "journeys started", span)
    return _show(answers.with_funnel_shares(answer, catalog, by), args)


def _run_dropoffs(settings: Settings, args: argparse.Namespace) -> int:
    span = TimeRange.parse(args.since, args.until)
    by = breakdown_columns(_asked_by(args), questions.DROPOFF_BREAKDOWNS, "dropoffs")
    with open_journeys(settings.clickhouse_dsn) as client:
        catalog = _catalog(client)
        catalog.check_stage(args.definition, args.stage)
        answer = ask(client, questions.dropoffs(args.definition, args.stage, span, by))
        if not answer.rows:
            raise _nothing(client, "standing drop-offs", span)
    return _show(answers.in_stage_order(answer, catalog), args)


def _run_paths(settings: Settings, args: argparse.Namespace) -> int:
    span = TimeRange.parse(args.since, args.until)
    if args.limit < 1:
        raise QueryError("--limit must be at least 1")
    with open_journeys(settings.clickhouse_dsn) as client:
        catalog = _catalog(client)
        catalog.check_stage(args.definition, args.stage)
        answer = ask(client, questions.paths(args.definition, args.stage, span, args.limit))
        if not answer.rows:
            raise _nothing(client, "standing drop-offs", span)
    return _show(answers.in_stage_order(answer, catalog), args)


def _run_switches(settings: Settings, args: argparse.Namespace) -> int:
    span = TimeRange.parse(args.since, args.until)
    by = breakdown_columns(_asked_by(args), questions.SWITCH_BREAKDOWNS, "switches")
    with open_journeys(settings.clickhouse_dsn) as client:
        answer = ask(client, questions.switches(span, by))
        if not answer.rows:
            raise _nothing(client, "channel switches", span)
    return _show(answer, args)


def _run_person(settings: Settings, args: argparse.Namespace) -> int:
    from stream_processors.identity.core.records import person_id

    span = TimeRange.parse(args.since, args.until)
    with open_journeys(settings.clickhouse_dsn) as client:
        pid = args.id
        if ":" in args.id:
            override = ask(client, questions.person_override(args.id)).rows
            remapped = override and override[0][1]
            pid = override[0][0] if remapped else person_id(args.id)
        answer = ask(client, questions.timeline(pid, span))
        if not answer.rows:
            where = f" {span.describe()}" if span.bounded else " in ClickHouse"
            raise QueryError(f"unknown person {args.id!r}: nothing about them{where}")
    return _show(answer, args)


def _run_sql(settings: Settings, args: argparse.Namespace) -> int:
    with open_journeys(settings.clickhouse_dsn) as client:
        answer = ask(client, questions.Query(args.statement), readonly=True)
    return _show(answer, args)
