"""`journeys ui` in a real headless Chromium (Debian's `chromium`, driven by Selenium through
Debian's `chromedriver`: their own browser downloads fail here).

The data is what the real stages make of a simulated day (`ui_data`), in a chDB folder this
process serves over ClickHouse's HTTP interface, as a running sink does; `journeys ui` runs
as its own process and finds that interface through the folder's announcement. The numbers
each chart draws are read from ECharts in the page and compared with SQL of the test's own
through `sinks.clickhouse.reading`.

Set JOURNEYS_UI_SCREENSHOTS to a folder (`docs/images`) to save the page's screenshots there.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest
from clickhouse_connect.driver.client import Client
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from schemas.settings import ClickHouseHttpSettings, Settings
from sinks.clickhouse import insert_json_rows, reader_dsn, reading
from sinks.http.server import HttpInterface

from .helpers import free_port, healthy, journeys, reap, wait_for
from .ui_data import fill

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Generous: the page reads ClickHouse once per chart; never a timed assertion.
SETTLED = 60
# The alert timeline reads again every 3 s; a new alert must show within this.
NEW_ALERT = 30
# Parts of what the simulated day made (journeys start on 2025-03-03, drop off from
# 03-04 on): each chart must follow the range, not show everything.
STARTED = ("2025-03-03T00:00", "2025-03-03T12:00")
DROPPED = ("2025-03-04T00:00", "2025-03-05T12:00")
IN_SPAN = "BETWEEN {since:DateTime64(3, 'UTC')} AND {until:DateTime64(3, 'UTC')} - 0.001"
TOKEN = "page-token-for-tests"


@dataclass
class Served:
    url: str
    guarded_url: str  # a second `journeys ui`, started with a token
    dsn: str
    writer: Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("ui")
    folder = tmp / "clickhouse"
    interface = HttpInterface(folder, ClickHouseHttpSettings(port=0)).start()
    dsn = f"chdb://{folder}"
    writer = clickhouse_connect.get_client(dsn=reader_dsn(dsn))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        fill(writer)
        settings = Settings(data_dir=tmp / "data", clickhouse={"dsn": dsn})
        url = start_ui(settings, tmp / "ui.log", procs)
        guarded = start_ui(settings, tmp / "ui-token.log", procs, JOURNEYS_UI__TOKEN=TOKEN)
        yield Served(url, guarded, dsn, writer)
    finally:
        for proc in procs:
            reap(proc)
        writer.close()
        interface.stop()  # chDB holds one folder per process: later tests open others


def start_ui(
    settings: Settings, log: Path, procs: list[subprocess.Popen[bytes]], **extra: str
) -> str:
    port = free_port()
    proc = journeys(settings, "ui", "--port", str(port), log=log, **extra)
    procs.append(proc)
    wait_for(lambda: healthy(port) or _refused(port), 60, "the page's /health", [proc], log)
    return f"http://127.0.0.1:{port}"


def _refused(port: int) -> bool:
    """Up, but asking for the token."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
            return False
    except urllib.error.HTTPError as error:
        with error:  # its socket closed now, not in a later test
            return error.code == 401
    except OSError:
        return False
    return False


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: WebDriver, url: str, panels: tuple[str, ...] = ()) -> list[str]:
    """Load `url` and wait until every panel (those given, else all but the person's) has
    drawn or said why not; the browser's console errors meanwhile."""
    console_errors(browser)  # read (and so drop) what earlier pages logged
    browser.get(url)
    wanted = list(panels or ("funnel", "trend", "paths", "alerts"))
    names = orjson.dumps(wanted).decode()
    settled = (
        f"return {names}.every(n => ['ready', 'empty'].includes("
        "document.getElementById(n).dataset.state))"
    )
    WebDriverWait(browser, SETTLED).until(lambda d: d.execute_script(settled))
    return console_errors(browser)


def console_errors(browser: WebDriver) -> list[str]:
    """The errors the page logged since the last call (the log is read once)."""
    log: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry["message"] for entry in log if entry["level"] == "SEVERE"]


def state(browser: WebDriver, panel: str) -> str:
    return str(browser.execute_script(f"return document.getElementById('{panel}').dataset.state"))


def message(browser: WebDriver, panel: str) -> str:
    return str(
        browser.execute_script(
            f"const m = document.querySelector('#{panel} .message'); "
            "return m.hidden ? '' : m.textContent"
        )
    )


def chart_option(browser: WebDriver, panel: str) -> dict[str, Any]:
    """What ECharts draws in a panel (its merged option)."""
    found: dict[str, Any] = browser.execute_script(
        f"return echarts.getInstanceByDom(document.getElementById('{panel}-chart')).getOption()"
    )
    return found


def sql(served: Served, query: str, **parameters: Any) -> list[tuple[Any, ...]]:
    with reading(served.dsn) as client:
        return [tuple(row) for row in client.query(query, parameters=parameters).result_rows]


def busiest_person(served: Served) -> str:
    rows = sql(
        served,
        "SELECT person_id FROM person_timeline GROUP BY person_id "
        "ORDER BY uniqExact(kind) DESC, count() DESC, person_id LIMIT 1",
    )
    return str(rows[0][0])


def page_url(served: Served, span: tuple[str, str] | None = None, **query: str) -> str:
    if span is not None:
        query |= {"from": span[0], "to": span[1]}
    return served.url + "/?" + "&".join(f"{k}={v}" for k, v in query.items())


def bound(span: tuple[str, str]) -> dict[str, str]:
    """The range as the SQL's parameters."""
    return {"since": span[0].replace("T", " ") + ":00", "until": span[1].replace("T", " ") + ":00"}


@pytest.mark.parametrize(
    "view",
    ["everything", "a range", "another definition", "a person", "an unknown person"],
)
def test_each_view_loads_without_console_errors(
    served: Served, browser: WebDriver, view: str
) -> None:
    query: dict[str, str] = {
        "everything": {},
        "a range": {"from": STARTED[0], "to": DROPPED[1]},
        "another definition": {"definition": "support"},
        "a person": {"id": busiest_person(served)},
        "an unknown person": {"id": "nobody-at-all"},
    }[view]
    panels = ("funnel", "trend", "paths", "alerts", *(("person",) if "id" in query else ()))
    errors = open_page(browser, page_url(served, None, **query), panels)
    assert errors == []
    for panel in ("funnel", "trend", "paths", "alerts"):
        assert state(browser, panel) == "ready", f"{panel}: {message(browser, panel)}"
    if view == "a person":
        assert state(browser, "person") == "ready"


def test_an_unknown_person_and_an_empty_range_are_messages(
    served: Served, browser: WebDriver
) -> None:
    assert open_page(browser, page_url(served, id="nobody-at-all"), ("person",)) == []
    assert state(browser, "person") == "empty"
    assert "unknown person 'nobody-at-all'" in message(browser, "person")

    # The range's end before its start: every chart says so.
    errors = open_page(browser, page_url(served, (DROPPED[1], DROPPED[0])))
    assert errors == []
    for panel in ("funnel", "trend", "paths", "alerts"):
        assert state(browser, panel) == "empty"
        assert "empty range" in message(browser, panel)

    # A range the data does not reach: nothing in it, and which times the data holds.
    open_page(browser, page_url(served, ("2030-01-01T00:00", "2030-01-02T00:00")))
    assert "no purchase journeys started" in message(browser, "funnel")
    assert "ClickHouse holds touchpoints from 2025-03-03" in message(browser, "funnel")


def test_the_funnel_shows_the_sql_numbers(served: Served, browser: WebDriver) -> None:
    open_page(browser, page_url(served, STARTED, definition="purchase"))
    option = chart_option(browser, "funnel")
    stages = option["xAxis"][0]["data"]
    shown = {
        (series["name"], stage): count
        for series in option["series"]
        for stage, count in zip(stages, series["data"], strict=True)
        if count
    }
    expected = sql(
        served,
        "SELECT first_channel, stage, count() FROM journey_stages "
        f"WHERE definition_id = 'purchase' AND started_at {IN_SPAN} "
        "GROUP BY first_channel, stage",
        **bound(STARTED),
    )
    assert shown == {(channel, stage): n for channel, stage, n in expected}
    assert stages == ["discover", "consider", "cart", "checkout", "purchase"]
    # Half the data: the range was applied.
    everything = sql(served, "SELECT count() FROM journey_stages WHERE definition_id = 'purchase'")
    assert 0 < sum(shown.values()) < everything[0][0]


def test_the_trend_shows_the_sql_numbers(served: Served, browser: WebDriver) -> None:
    open_page(browser, page_url(served, DROPPED, definition="purchase"))
    option = chart_option(browser, "trend")
    buckets = browser.execute_script("return journeysPage.replies.trend.chart.buckets")
    assert len(option["xAxis"][0]["data"]) == len(buckets)
    shown = {
        (bucket, series["name"]): count
        for series in option["series"]
        for bucket, count in zip(buckets, series["data"], strict=True)
        if count
    }
    expected = sql(
        served,
        "SELECT formatDateTime(toStartOfHour(dropped_at), '%Y-%m-%dT%H:00:00Z'), stage, "
        "count() FROM dropoffs_standing "
        f"WHERE definition_id = 'purchase' AND dropped_at {IN_SPAN} GROUP BY 1, 2",
        **bound(DROPPED),
    )
    assert expected
    assert shown == {(bucket, stage): n for bucket, stage, n in expected}


def test_the_paths_show_the_sql_numbers(served: Served, browser: WebDriver) -> None:
    open_page(
        browser,
        page_url(served, DROPPED, definition="purchase", limit="50"),
    )
    expected = sql(
        served,
        "SELECT stage, count(), uniqExact(path) FROM dropoff_paths "
        f"WHERE definition_id = 'purchase' AND dropped_at {IN_SPAN} GROUP BY stage",
        **bound(DROPPED),
    )
    assert all(paths <= 50 for _stage, _n, paths in expected), "the page would show a part"
    (sankey,) = chart_option(browser, "paths")["series"]
    into = Counter[str]()
    for link in sankey["links"]:
        if link["target"].startswith("dropped at "):
            into[link["target"].removeprefix("dropped at ")] += link["value"]
    assert dict(into) == {stage: n for stage, n, _paths in expected}


def test_the_alert_timeline_shows_the_sql_alerts(served: Served, browser: WebDriver) -> None:
    open_page(browser, page_url(served, STARTED))
    shown = browser.execute_script(
        "return [...document.querySelectorAll('#alerts-table tbody tr')]"
        ".map(tr => [tr.dataset.incidentId, tr.className])"
    )
    expected = sql(
        served,
        f"SELECT incident_id, status FROM alerts FINAL WHERE started_at {IN_SPAN}",
        **bound(STARTED),
    )
    assert expected
    assert sorted(map(tuple, shown)) == sorted(expected)
    bars = chart_option(browser, "alerts")["series"][0]["data"]
    assert len(bars) == len(expected)


def test_a_new_alert_appears_on_the_open_timeline(served: Served, browser: WebDriver) -> None:
    open_page(browser, served.url + "/")
    browser.execute_script("window.notReloaded = true")
    incident = "ui-test-incident"
    assert not browser.execute_script(f"return !!document.querySelector({_row(incident)})")

    insert_json_rows(served.writer, "alerts", orjson.dumps([_alert(incident, 1)]), "ui-new-1")
    WebDriverWait(browser, NEW_ALERT).until(
        lambda d: d.execute_script(f"return !!document.querySelector({_row(incident)})")
    )
    # Its next version (read with FINAL) replaces it on the page, still without reloading.
    insert_json_rows(served.writer, "alerts", orjson.dumps([_alert(incident, 2)]), "ui-new-2")
    WebDriverWait(browser, NEW_ALERT).until(
        lambda d: (
            d.execute_script(f"return document.querySelector({_row(incident)}).className")
            == "resolved"
        )
    )
    assert browser.execute_script("return window.notReloaded") is True
    lanes = chart_option(browser, "alerts")["yAxis"][0]["data"]
    assert "web /checkout · ui_test_series" in lanes
    assert console_errors(browser) == []


def _row(incident: str) -> str:
    return orjson.dumps(f'#alerts-table tr[data-incident-id="{incident}"]').decode()


def _alert(incident: str, version: int) -> dict[str, Any]:
    resolved = version > 1
    return {
        "incident_id": incident,
        "version": version,
        "status": "resolved" if resolved else "firing",
        "kind": "friction_spike",
        "series_kind": "friction",
        "scope": "web:/checkout",
        "series_name": "ui_test_series",
        "place": "web /checkout",
        "started_at": "2025-03-05 12:00:00.000",
        "last_window_start": "2025-03-05 12:00:00.000",
        "last_window_end": "2025-03-05 12:05:00.000",
        "resolved_at": "2025-03-05 12:30:00.000" if resolved else None,
        "windows": 1,
        "observed": 9,
        "expected": 1.5,
        "volume": 40,
        "severity": "critical",
        "explanation": "a test alert",
    }


def test_each_chart_downloads_as_csv(served: Served, browser: WebDriver) -> None:
    open_page(browser, page_url(served, id=busiest_person(served)), ("person",))
    for panel in ("funnel", "trend", "paths", "alerts", "person"):
        href = browser.execute_script(f"return document.querySelector('#{panel} .csv').href")
        with urllib.request.urlopen(href, timeout=30) as response:
            assert response.headers["Content-Type"].startswith("text/csv")
            lines = response.read().decode().splitlines()
        rows = browser.execute_script(f"return journeysPage.replies.{panel}.rows")
        columns = browser.execute_script(f"return journeysPage.replies.{panel}.columns")
        assert lines[0].split(",") == columns
        assert len(lines) == len(rows) + 1, panel


def test_with_a_token_every_request_needs_it(served: Served, browser: WebDriver) -> None:
    guarded = served.guarded_url
    for path in ("/", "/api/funnel", "/static/page.js", "/health"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(guarded + path, timeout=10)
        # Closed here: the error holds its response's socket in a cycle through its
        # traceback, and the garbage collector's warning failed a later test (test_watch).
        with refused.value as error:
            assert error.code == 401
    request = urllib.request.Request(
        guarded + "/api/meta", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert "purchase" in orjson.loads(response.read())["definitions"]
    # Opened once with ?token=, the page keeps it in a cookie and drops it from the address.
    assert open_page(browser, f"{guarded}/?token={TOKEN}") == []
    assert "token" not in browser.current_url
    assert state(browser, "funnel") == "ready"


@pytest.fixture(autouse=True, scope="module")
def _screenshots(served: Served, browser: WebDriver) -> Iterator[None]:
    """With JOURNEYS_UI_SCREENSHOTS set, the whole page, and a person's timeline, saved
    there once the module's tests have run."""
    yield
    folder = os.environ.get("JOURNEYS_UI_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    open_page(browser, page_url(served, id=busiest_person(served)), ("person",))
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, int(height))
    WebDriverWait(browser, SETTLED).until(
        lambda d: d.execute_script("return journeysPage.alertsReads > 0")
    )
    browser.save_screenshot(str(Path(folder) / "ui.png"))
