"""The page's ASGI application with a reader made by hand: routes, read-only methods, the
token, JSON and CSV answers, messages instead of errors, the static files it serves."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from deploy.query.answers import Answer
from deploy.ui.answering import Reply
from deploy.ui.app import STATIC, UiApp, static_files
from deploy.ui.asking import Asked
from sinks.clickhouse import ClickHouseUnreachableError, NoJourneysDataError

FUNNEL = Answer(
    ["definition", "stage", "first_channel", "journeys"],
    [("purchase", "discover", "web", 10), ("purchase", "cart", "web", 3)],
)


class Reader:
    """Answers the funnel, has nothing else; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Asked]] = []

    def __call__(self, endpoint: str, asked: Asked) -> Reply:
        self.asked.append((endpoint, asked))
        if endpoint == "meta":
            return Reply(extra={"first": datetime(2026, 1, 5, 9, 30)})
        if endpoint == "funnel":
            return Reply(FUNNEL, {"stages": ["discover", "cart"]})
        if endpoint == "alerts":
            raise ClickHouseUnreachableError("ClickHouse is not reachable at x")
        if endpoint == "trend":
            raise NoJourneysDataError("no ClickHouse data at /x: run the pipeline there first")
        return Reply(message="unknown person 'p': nothing about them in ClickHouse")


def call(
    app: UiApp, path: str, query: str = "", method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(app(scope, receive, send))
    start, body = sent
    got = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], got, body["body"]


@pytest.fixture
def reader() -> Reader:
    return Reader()


@pytest.fixture
def app(reader: Reader) -> UiApp:
    return UiApp(reader, None)


def test_the_page_and_its_files_are_served_with_their_types(app: UiApp) -> None:
    status, headers, body = call(app, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"/static/vendor/echarts.min.js" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    status, headers, _body = call(app, "/static/vendor/echarts.min.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert call(app, "/static/../app.py")[0] == 404
    assert call(app, "/static/page.js", method="HEAD")[2] == b""


def test_the_package_holds_the_library_and_its_licence() -> None:
    files = static_files(STATIC)
    for name in ("index.html", "page.js", "page.css", "vendor/echarts.min.js"):
        assert f"/static/{name}" in files
    assert "Apache License" in (STATIC / "vendor" / "ECHARTS-LICENSE").read_text()


def test_a_chart_answers_json_and_csv(app: UiApp, reader: Reader) -> None:
    status, headers, body = call(app, "/api/funnel", "from=2026-01-05&definition=purchase")
    assert status == 200 and headers["cache-control"] == "no-store"
    doc = orjson.loads(body)
    assert doc["rows"][0] == {
        "definition": "purchase",
        "stage": "discover",
        "first_channel": "web",
        "journeys": 10,
    }
    assert doc["chart"] == {"stages": ["discover", "cart"]} and doc["message"] is None
    assert reader.asked[-1] == ("funnel", Asked(since="2026-01-05", definition="purchase"))

    status, headers, body = call(app, "/api/funnel", "from=2026-01-05&format=csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert 'filename="journeys-funnel-20260105.csv"' in headers["content-disposition"]
    assert body.decode().splitlines() == [
        "definition,stage,first_channel,journeys",
        "purchase,discover,web,10",
        "purchase,cart,web,3",
    ]


def test_times_are_utc_in_json(app: UiApp) -> None:
    assert orjson.loads(call(app, "/api/meta")[2])["first"] == "2026-01-05T09:30:00Z"


def test_a_folder_without_journeys_data_is_a_message_on_the_page(app: UiApp) -> None:
    status, _headers, body = call(app, "/api/trend")
    assert status == 200
    assert orjson.loads(body)["message"].startswith("no ClickHouse data at /x")


def test_nothing_to_show_is_a_message_not_an_error(app: UiApp) -> None:
    status, _headers, body = call(app, "/api/person", "id=p")
    assert status == 200
    assert orjson.loads(body)["message"].startswith("unknown person 'p'")
    status, _headers, body = call(app, "/api/person", "id=p&format=csv")
    assert status == 404 and body.startswith(b"unknown person")


@pytest.mark.parametrize(
    ("path", "query", "method", "status"),
    [
        ("/api/funnel", "", "POST", 405),
        ("/", "", "DELETE", 405),
        ("/api/nothing", "", "GET", 404),
        ("/elsewhere", "", "GET", 404),
        ("/api/funnel", "limit=0", "GET", 400),
        ("/api/alerts", "", "GET", 503),
        ("/health", "", "GET", 200),
    ],
)
def test_what_is_refused(app: UiApp, path: str, query: str, method: str, status: int) -> None:
    assert call(app, path, query, method)[0] == status


def test_with_a_token_only_those_carrying_it_are_answered(reader: Reader) -> None:
    app = UiApp(reader, SecretStr("s3cret"))
    assert call(app, "/")[0] == 401
    assert call(app, "/api/funnel", authorization="Bearer s3cret")[0] == 200
    status, headers, _body = call(app, "/", "token=s3cret&definition=support")
    assert status == 303 and headers["location"] == "/?definition=support"
    cookie = headers["set-cookie"].split(";")[0]
    assert call(app, "/api/funnel", cookie=cookie)[0] == 200
    assert not [asked for asked in reader.asked if asked[0] != "funnel"]
