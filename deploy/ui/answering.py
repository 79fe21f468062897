"""What each of the page's endpoints answers, read from ClickHouse: one client per request
through `deploy.query.reader.open_journeys` (so through `sinks.clickhouse.reading`: the
live interface of the process that serves the folder, else the folder itself, closed
afterwards), with the SQL of `deploy.query.questions` and `deploy.ui.questions` only: the page
runs no SQL of its users, so nothing it runs writes. (It does not ask for `readonly=1`: over
the HTTP interface that setting also refuses the settings the client itself sends.)

An answer that is empty, or a question that cannot be answered (an empty range, an unknown
person), is a `Reply` with a message for people, never an error page."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from deploy.query import answers, questions
from deploy.query.answers import Answer
from deploy.query.catalog import Catalog
from deploy.query.options import QueryError, TimeRange
from deploy.query.reader import ask, open_journeys
from deploy.ui import charts
from deploy.ui import questions as page_questions
from deploy.ui.asking import Asked, for_people
from sinks.clickhouse import reader_dsn
from sinks.http.discovery import folder_of


@dataclass(frozen=True)
class Reply:
    """An endpoint's answer: its rows (for the CSV and the tables), what its chart draws,
    and a message when there is nothing to draw, saying why."""

    answer: Answer = field(default_factory=lambda: Answer([], []))
    chart: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Endpoint = Callable[[Client, Asked], Reply]


class Answering:
    """The page's reader: `answering(endpoint, asked)` opens ClickHouse, answers, closes."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        # chDB allows one folder per process: when nothing serves the folder and this
        # process opens it itself, requests take turns (through a live interface they run
        # side by side, as the sink's other readers do).
        self._turns = threading.Lock()

    def __call__(self, endpoint: str, asked: Asked) -> Reply:
        answer = ENDPOINTS[endpoint]
        direct = folder_of(reader_dsn(self.dsn)) is not None
        try:
            if direct:
                with self._turns, open_journeys(self.dsn) as client:
                    return answer(client, asked)
            with open_journeys(self.dsn) as client:
                return answer(client, asked)
        except QueryError as exc:
            return Reply(message=for_people(str(exc)))


def _catalog(client: Client) -> Catalog:
    recorded = ask(client, questions.CATALOG_RECORDED).rows
    seen = ask(client, questions.CATALOG_SEEN).rows
    return Catalog.build(recorded, seen)


def _data_span(client: Client) -> tuple[datetime | None, datetime | None, int]:
    first, last, count = ask(client, questions.DATA_SPAN).rows[0]
    return (_utc(first), _utc(last), int(count)) if count else (None, None, 0)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _nothing(client: Client, what: str, span: TimeRange) -> str:
    """Why an answer is empty, saying which times the data holds."""
    first, last, count = _data_span(client)
    if not count or first is None or last is None:
        return f"no {what}: ClickHouse holds no touchpoints yet"
    held = f"ClickHouse holds touchpoints from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
    where = span.describe() if span.bounded else "yet"
    return f"no {what} {where}; {held}"


def _definition(catalog: Catalog, asked: Asked) -> str:
    """The definition asked for, or the first one known."""
    catalog.check_definition(asked.definition)
    if asked.definition is not None:
        return asked.definition
    if not catalog.stages:
        raise QueryError("no journeys in ClickHouse yet")
    return sorted(catalog.stages)[0]


def meta(client: Client, _asked: Asked) -> Reply:
    """The definitions and their stages, and the event times the data spans: the page's
    controls start from them."""
    first, last, count = _data_span(client)
    extra = {
        "definitions": _catalog(client).stages,
        "first": first,
        "last": last,
        "touchpoints": count,
    }
    return Reply(extra=extra)


def funnel(client: Client, asked: Asked) -> Reply:
    """Journeys started in the range reaching each stage, per first channel."""
    span, catalog = asked.span(), _catalog(client)
    definition = _definition(catalog, asked)
    by = ["first_channel"]
    found = ask(client, questions.funnel(definition, span, by))
    if not found.rows:
        return Reply(message=_nothing(client, f"{definition} journeys started", span))
    answer = answers.with_funnel_shares(found, catalog, by)
    return Reply(answer, charts.funnel(answer, catalog.stages[definition]))


def paths(client: Client, asked: Asked) -> Reply:
    """The most common paths before the standing drop-offs of the range."""
    span, catalog = asked.span(), _catalog(client)
    definition = _definition(catalog, asked)
    found = ask(client, questions.paths(definition, None, span, asked.paths))
    if not found.rows:
        return Reply(message=_nothing(client, f"standing {definition} drop-offs", span))
    answer = answers.in_stage_order(found, catalog)
    return Reply(answer, charts.paths(answer))


def trend(client: Client, asked: Asked) -> Reply:
    """Standing drop-offs per stage and time bucket, dropped in the range."""
    span, catalog = asked.span(), _catalog(client)
    definition = _definition(catalog, asked)
    first, last, _count = _data_span(client)
    since = span.since or first or datetime.now(UTC)
    until = span.until or last or since
    bucket = charts.bucket_for(since, until)
    query = page_questions.dropoff_trend(definition, span, bucket)
    answer = ask(client, query)
    if not answer.rows:
        return Reply(message=_nothing(client, f"standing {definition} drop-offs", span))
    return Reply(answer, charts.trend(answer, catalog.stages[definition], bucket))


def alerts(client: Client, asked: Asked) -> Reply:
    """The alerts that started in the range, newest first, at their latest version."""
    span = asked.span()
    answer = ask(client, page_questions.alerts(span))
    if not answer.rows:
        where = span.describe() if span.bounded else "yet"
        return Reply(answer, charts.alerts(answer), f"no alerts {where}")
    return Reply(answer, charts.alerts(answer))


def person(client: Client, asked: Asked) -> Reply:
    """One person's timeline: a person id, or an identifier as TYPE:VALUE (resolved as
    `journeys query person` resolves it)."""
    from stream_processors.identity.core.records import person_id

    if asked.person is None:
        return Reply(message="enter a person id, or an identifier as TYPE:VALUE")
    span, pid = asked.span(), asked.person
    if ":" in pid:
        override = ask(client, questions.person_override(pid)).rows
        pid = override[0][0] if override and override[0][1] else person_id(pid)
    answer = ask(client, questions.timeline(pid, span))
    if not answer.rows:
        where = span.describe() if span.bounded else "in ClickHouse"
        return Reply(message=f"unknown person {asked.person!r}: nothing about them {where}")
    return Reply(answer, charts.person(answer), extra={"person_id": pid})


ENDPOINTS: dict[str, Endpoint] = {
    "meta": meta,
    "funnel": funnel,
    "paths": paths,
    "trend": trend,
    "alerts": alerts,
    "person": person,
}
