"""`journeys query`: the pure pieces (ranges, steps, catalog checks, funnel shares, formats),
then the commands (and `report`, `identity show`) on the embedded engine over the rows of
tests/unit/sinks/analyst_rows.py, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from deploy.cli import main
from deploy.query.answers import Answer, adhoc_funnel, with_funnel_shares
from deploy.query.catalog import Catalog
from deploy.query.formats import render
from deploy.query.options import QueryError, Step, TimeRange, breakdown_columns, parse_steps
from sinks.clickhouse import migrate, session
from tests.unit.sinks.analyst_rows import fill

CATALOG = Catalog.build(
    [
        ("purchase", 1, "discover", 1),
        ("purchase", 1, "cart", 2),
        ("purchase", 2, "view", 1),
        ("purchase", 2, "cart", 2),
        ("purchase", 2, "paid", 3),
    ],
    [("support", "issue"), ("purchase", "paid")],
)


def test_a_range_takes_dates_and_times_in_utc_and_refuses_an_empty_one() -> None:
    span = TimeRange.parse("2026-01-05", "2026-01-05T12:30:00+02:00")
    assert span.since == datetime(2026, 1, 5, tzinfo=UTC)
    assert span.until == datetime(2026, 1, 5, 10, 30, tzinfo=UTC)
    with pytest.raises(QueryError, match="empty range"):
        TimeRange.parse("2026-01-05", "2026-01-05")
    with pytest.raises(QueryError, match="--to 'soon'"):
        TimeRange.parse(None, "soon")


def test_steps_and_breakdowns() -> None:
    assert parse_steps("web:home_view, *:order_completed,search") == [
        Step("web", "home_view"),
        Step(None, "order_completed"),
        Step(None, "search"),
    ]
    with pytest.raises(QueryError, match="unknown channel 'fax'"):
        parse_steps("fax:x,web:y")
    with pytest.raises(QueryError, match="at least two"):
        parse_steps("web:x")
    allowed = {"channel": "first_channel", "day": "day"}
    assert breakdown_columns(["day", "channel", "day"], allowed, "funnel") == [
        "day",
        "first_channel",
    ]
    with pytest.raises(QueryError, match=r"cannot break down by 'colour' \(choose: channel, day"):
        breakdown_columns(["colour"], allowed, "funnel")


def test_the_catalog_orders_stages_by_the_newest_recorded_version() -> None:
    assert CATALOG.stages == {"purchase": ["view", "cart", "paid"], "support": ["issue"]}
    CATALOG.check_stage("purchase", "paid")
    with pytest.raises(QueryError, match=r"unknown definition 'buy' \(known: purchase, support\)"):
        CATALOG.check_definition("buy")
    with pytest.raises(QueryError, match="unknown stage 'issue' of 'purchase'"):
        CATALOG.check_stage("purchase", "issue")


def test_funnel_shares_add_up_a_split_stage() -> None:
    answer = Answer(
        ["definition", "stage", "stage_channel", "journeys"],
        [
            ("purchase", "cart", "web", 3),
            ("purchase", "view", "app", 4),
            ("purchase", "view", "web", 6),
            ("purchase", "paid", "store", 2),
        ],
    )
    shared = with_funnel_shares(answer, CATALOG, ["stage_channel"])
    assert shared.rows == [
        ("purchase", "view", "app", 4, 0.4, None),
        ("purchase", "view", "web", 6, 0.6, None),
        ("purchase", "cart", "web", 3, 0.3, 0.3),
        ("purchase", "paid", "store", 2, 0.2, 0.667),
    ]


def test_an_adhoc_funnel_counts_persons_reaching_at_least_each_step() -> None:
    steps = [Step("web", "a"), Step(None, "b"), Step("app", "c")]
    answer = adhoc_funnel(steps, [(0, 5), (1, 4), (2, 3), (3, 1)])
    assert [row[2:] for row in answer.rows] == [(8, 1.0, None), (4, 0.5, 0.5), (1, 0.125, 0.25)]
    assert answer.rows[1][1] == "*:b"


def test_formats() -> None:
    answer = Answer(["at", "n", "ids"], [(datetime(2026, 1, 5, 8), 3, ["a:1", "b:2"])])
    assert orjson.loads(render(answer, "json")) == [
        {"at": "2026-01-05T08:00:00.000Z", "n": 3, "ids": ["a:1", "b:2"]}
    ]
    assert render(answer, "csv").splitlines()[1] == '2026-01-05 08:00:00.000,3,"[""a:1"",""b:2""]"'
    assert render(answer, "table").splitlines() == [
        "at                       n  ids",
        "2026-01-05 08:00:00.000  3  a:1, b:2",
    ]


@pytest.fixture(scope="module")
def dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    made = f"chdb://{tmp_path_factory.mktemp('query') / 'clickhouse'}"
    with session(made) as client:
        migrate(client)
        fill(client)
    yield made


def test_the_catalog_skips_the_journeys_when_every_stage_is_recorded(dsn: str) -> None:
    from deploy.query import questions

    with session(dsn) as client:
        recorded = [tuple(r) for r in client.query(questions.CATALOG_RECORDED.sql).result_rows]
        assert client.query(questions.CATALOG_SEEN.sql).result_rows == []
        seen = client.query(
            "SELECT definition_id, stage FROM journey_stages GROUP BY definition_id, stage "
            "ORDER BY definition_id, min(position), stage"
        ).result_rows
    pairs = [(str(d), str(s)) for d, s in seen]
    catalog = Catalog.build(recorded, [])
    assert pairs and catalog == Catalog.build(recorded, pairs)


def run(
    dsn: str, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setenv("JOURNEYS_CLICKHOUSE__DSN", dsn)
    monkeypatch.setenv("JOURNEYS_LOG_LEVEL", "ERROR")
    code = main(["query", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_funnel_as_json_per_stage_channel(
    dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        dsn,
        ["funnel", "--definition", "purchase", "--by", "stage_channel", "--format", "json"],
        monkeypatch,
        capsys,
    )
    assert code == 0
    got = [(r["stage"], r["stage_channel"], r["journeys"]) for r in orjson.loads(out)]
    assert got == [
        ("discover", "app", 1),
        ("discover", "web", 1),
        ("consider", "app", 1),
        ("consider", "web", 1),
        ("cart", "app", 1),
        ("cart", "web", 1),
        ("checkout", "app", 1),
        ("purchase", "app", 1),
    ]


def test_dropoffs_paths_switches_and_a_person(
    dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        dsn, ["dropoffs", "--by", "stage_channel", "--format", "csv"], monkeypatch, capsys
    )
    assert code == 0 and out.splitlines()[1].startswith("purchase,cart,web,1,")
    code, out, _ = run(dsn, ["paths", "--stage", "cart", "--format", "json"], monkeypatch, capsys)
    assert orjson.loads(out)[0]["path"].startswith("app:product_view > web:add_to_cart")
    code, out, _ = run(dsn, ["switches", "--format", "json"], monkeypatch, capsys)
    assert sum(r["after_friction_count"] for r in orjson.loads(out)) == 2
    code, out, _ = run(
        dsn, ["person", "p2", "--from", "2026-01-06", "--format", "json"], monkeypatch, capsys
    )
    assert [r["kind"] for r in orjson.loads(out)] == [
        "touchpoint",
        "dropoff",
        "journey",
        "touchpoint",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["funnel", "--definition", "buy"], "unknown definition 'buy'"),
        (["dropoffs", "--definition", "purchase", "--stage", "issue"], "unknown stage 'issue'"),
        (["person", "customer_id:nobody"], "unknown person 'customer_id:nobody'"),
        (["funnel", "--from", "2026-02-01", "--to", "2026-01-01"], "empty range"),
        (["dropoffs", "--from", "2027-01-01"], "no standing drop-offs between 2027-01-01"),
        (["sql", "DROP TABLE touchpoints"], "readonly"),
    ],
)
def test_what_cannot_be_answered_is_one_line_and_exit_code_2(
    dsn: str,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(dsn, args, monkeypatch, capsys)
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and message in err


def test_a_path_without_journeys_tables_is_one_line_and_is_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing"
    code, _, err = run(f"chdb://{missing}", ["funnel"], monkeypatch, capsys)
    assert code == 2 and "no ClickHouse data at" in err and not missing.exists()
    (tmp_path / "empty").mkdir()
    code, _, err = run(f"chdb://{tmp_path / 'empty'}", ["dropoffs"], monkeypatch, capsys)
    assert code == 2 and "holds no journeys tables" in err
    assert len(err.strip().splitlines()) == 1


def test_report_and_identity_show_read_clickhouse_with_no_broker(
    dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_CLICKHOUSE__DSN", dsn)
    monkeypatch.setenv("JOURNEYS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("JOURNEYS_LOG_LEVEL", "ERROR")
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "ClickHouse touchpoints: 9 rows" in out
    assert (
        "Dead-lettered: not read (they stay in Kafka, which is not reachable at 127.0.0.1:1)" in out
    )
    assert "purchase cart (web)" in out
    assert main(["identity", "show", "p2"]) == 0
    out = capsys.readouterr().out
    assert "merge (link)" in out and "p2old -> p2" in out
    assert main(["identity", "show", "customer_id:nobody"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "journeys: error: unknown person or identifier 'customer_id:nobody': nothing "
        "about it in ClickHouse"
    ]


def test_the_demo_ends_with_where_its_data_is_and_the_command_that_queries_it() -> None:
    from deploy.demo import where_to_look

    text = where_to_look(Path("/data/demo/clickhouse"))
    assert "/data/demo/clickhouse" in text.splitlines()[0]
    command = text.splitlines()[-1].split()
    assert command[0] == "JOURNEYS_CLICKHOUSE__DSN=chdb:///data/demo/clickhouse"
    assert command[1:3] == ["journeys", "query"]
    from deploy.cli import _parser

    _parser().parse_args(command[2:])
