"""sinks.http.core.request: a request read as ClickHouse reads it."""

from __future__ import annotations

import base64

import pytest

from sinks.http.core.errors import QueryError
from sinks.http.core.request import (
    Credentials,
    Insert,
    Query,
    check_reads_only,
    parse_request,
    plan,
    preferred_encodings,
    result_format,
    statement_kind,
)


def test_parameters_split_into_reserved_settings_and_query_parameters() -> None:
    request = parse_request(
        "POST",
        "query=SELECT+%7Bx%3AUInt8%7D&database=analytics&default_format=JSON&max_threads=2"
        "&param_x=7&session_id=s1&query_id=q1&compress=1",
        {},
    )
    assert request.query == "SELECT {x:UInt8}"
    assert request.database == "analytics"
    assert request.default_format == "JSON"
    assert request.settings == {"max_threads": "2"}
    assert request.params == {"x": "7"}
    assert (request.session_id, request.query_id, request.compress) == ("s1", "q1", True)


def test_a_parameter_that_cannot_be_a_setting_is_an_unknown_setting() -> None:
    with pytest.raises(QueryError) as raised:
        parse_request("GET", "query=SELECT+1&max-threads=2", {})
    assert raised.value.code == 115
    assert "max-threads" in raised.value.message
    assert raised.value.status == 400


def test_headers_give_the_format_database_and_query_id_the_jdbc_driver_sends() -> None:
    request = parse_request(
        "POST",
        "compress=1",
        {
            "x-clickhouse-format": "RowBinaryWithNamesAndTypes",
            "x-clickhouse-database": "default",
            "x-clickhouse-query-id": "abc",
        },
    )
    assert request.default_format == "RowBinaryWithNamesAndTypes"
    assert (request.database, request.query_id) == ("default", "abc")


@pytest.mark.parametrize(
    ("query_string", "headers", "expected"),
    [
        ("", {}, Credentials("default", "")),
        ("user=ann&password=pw", {}, Credentials("ann", "pw")),
        ("", {"x-clickhouse-user": "bob", "x-clickhouse-key": "k"}, Credentials("bob", "k")),
        (
            "",
            {"authorization": "Basic " + base64.b64encode(b"cy:p:w").decode()},
            Credentials("cy", "p:w"),
        ),
    ],
)
def test_credentials_are_looked_for_where_clickhouse_looks(
    query_string: str, headers: dict[str, str], expected: Credentials
) -> None:
    assert parse_request("GET", query_string, headers).credentials == expected


def test_a_malformed_basic_header_is_an_authentication_failure() -> None:
    with pytest.raises(QueryError) as raised:
        parse_request("GET", "", {"authorization": "Basic %%%"})
    assert raised.value.code == 516


def test_the_body_continues_the_query_parameter() -> None:
    request = parse_request("POST", "query=SELECT", {})
    assert plan(request, b"1 + 1") == Query("SELECT\n1 + 1", "TabSeparated")


@pytest.mark.parametrize(
    ("query", "head", "data_format"),
    [
        ("INSERT INTO t FORMAT JSONEachRow", "INSERT INTO t", "JSONEachRow"),
        ("insert into t (a, b) format RowBinary", "insert into t (a, b)", "RowBinary"),
        ("INSERT INTO t VALUES", "INSERT INTO t", "Values"),
        (
            "/* batch */ INSERT INTO t SETTINGS async_insert=0 FORMAT CSV;",
            "/* batch */ INSERT INTO t SETTINGS async_insert=0",
            "CSV",
        ),
    ],
)
def test_an_insert_in_the_parameter_takes_the_body_as_its_data(
    query: str, head: str, data_format: str
) -> None:
    request = parse_request("POST", "", {})
    request = type(request)(**{**request.__dict__, "query": query})
    assert plan(request, b"\x00\x01binary") == Insert(head, data_format, b"\x00\x01binary")


def test_an_insert_in_the_body_keeps_binary_data_after_its_line_break() -> None:
    data = b"\n\x02\xff\x00"  # Native data may begin with a newline byte itself
    found = plan(parse_request("POST", "", {}), b"INSERT INTO `t` (`a`) FORMAT Native\n" + data)
    assert found == Insert("INSERT INTO `t` (`a`)", "Native", data)


def test_a_non_utf8_query_body_is_a_clear_error() -> None:
    with pytest.raises(QueryError) as raised:
        plan(parse_request("POST", "", {}), b"SELECT \xff")
    assert raised.value.status == 400
    assert "UTF-8" in raised.value.message


def test_an_empty_query_is_a_syntax_error() -> None:
    with pytest.raises(QueryError) as raised:
        plan(parse_request("GET", "", {}), b"")
    assert raised.value.code == 62


@pytest.mark.parametrize(
    "sql", ["INSERT INTO t VALUES (1)", "DROP TABLE t", "CREATE TABLE t (a UInt8) ENGINE=Memory"]
)
def test_a_get_on_a_kept_session_only_reads(sql: str) -> None:
    with pytest.raises(QueryError) as raised:
        check_reads_only(sql)
    assert (raised.value.code, raised.value.status) == (164, 403)
    check_reads_only("SELECT 1")
    check_reads_only("SET max_threads = 1")


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("  -- why\n/* and */ select 1", "SELECT"),
        ("WITH 1 AS x SELECT x", "WITH"),
        ("\n\tshow tables", "SHOW"),
        ("", ""),
    ],
)
def test_statement_kind_skips_comments(sql: str, kind: str) -> None:
    assert statement_kind(sql) == kind


def test_the_sqls_own_format_wins_over_the_requested_one() -> None:
    assert result_format("SELECT 1 FORMAT JSONEachRow", "TabSeparated") == "JSONEachRow"
    assert result_format("SELECT 'FORMAT x' AS f", "CSV") == "CSV"


def test_accept_encoding_is_ranked_by_weight_then_order() -> None:
    assert preferred_encodings("gzip;q=0.5, lz4, zstd;q=0, deflate") == ["lz4", "deflate", "gzip"]
