"""sinks.http.core.access and .errors: who may ask, under which limits, and what an error says."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from schemas.settings import ClickHouseHttpSettings, ClickHouseUser
from sinks.http.core.access import authenticate, handle_statements, quote
from sinks.http.core.errors import QueryError
from sinks.http.core.request import Credentials

ANALYST = ClickHouseUser(
    name="analyst",
    password=SecretStr("s3cret"),
    readonly=True,
    max_threads=2,
    max_execution_time_seconds=30,
    max_memory_usage_bytes=1_000_000_000,
)
WRITER = ClickHouseUser(name="sink", password=SecretStr("w"), max_threads=4)


def test_a_user_is_known_by_name_and_password() -> None:
    assert authenticate([WRITER, ANALYST], Credentials("analyst", "s3cret")) is ANALYST
    for wrong in (Credentials("analyst", "nope"), Credentials("nobody", "s3cret")):
        with pytest.raises(QueryError) as raised:
            authenticate([WRITER, ANALYST], wrong)
        assert (raised.value.code, raised.value.status) == (516, 403)


def test_a_read_only_users_limits_come_after_the_requests_settings_then_readonly() -> None:
    statements = handle_statements(ANALYST, {"max_threads": "64", "output_format": "x'y"})
    assert statements == [
        "SET max_threads = 64",
        "SET output_format = 'x\\'y'",
        "SET max_threads = 2",
        "SET max_execution_time = 30.0",
        "SET max_memory_usage = 1000000000",
        "SET readonly = 1",
    ]


def test_a_writer_keeps_its_limits_and_is_not_read_only() -> None:
    assert handle_statements(WRITER, {}) == ["SET max_threads = 4"]


def test_a_requests_readonly_applies_after_its_other_settings_whatever_its_place() -> None:
    # deploy/query asks readonly=1 before the settings clickhouse-connect adds.
    statements = handle_statements(WRITER, {"readonly": "1", "send_progress_in_http_headers": "1"})
    assert statements == [
        "SET send_progress_in_http_headers = 1",
        "SET max_threads = 4",
        "SET readonly = 1",
    ]
    assert handle_statements(ANALYST, {"readonly": "0"})[-1] == "SET readonly = 1"  # never lower
    assert handle_statements(WRITER, {"readonly": "0"}, reads_only=True)[-1] == "SET readonly = 2"


def test_a_get_makes_a_writers_handle_read_only_but_able_to_set() -> None:
    assert handle_statements(WRITER, {}, reads_only=True)[-1] == "SET readonly = 2"
    assert handle_statements(ANALYST, {}, reads_only=True)[-1] == "SET readonly = 1"


def test_setting_values_are_quoted_unless_numbers() -> None:
    assert [quote("1"), quote("0.5"), quote("best_effort")] == ["1", "0.5", "'best_effort'"]


def test_users_must_be_unique_and_name_the_client_user() -> None:
    with pytest.raises(ValidationError, match="appears twice"):
        ClickHouseHttpSettings(users=[WRITER, WRITER], client_user="sink")
    with pytest.raises(ValidationError, match="client_user"):
        ClickHouseHttpSettings(users=[WRITER])


def test_an_interface_reachable_from_other_machines_needs_every_password() -> None:
    with pytest.raises(ValidationError, match="needs a password"):
        ClickHouseHttpSettings(host="0.0.0.0")
    exposed = ClickHouseHttpSettings(host="0.0.0.0", users=[WRITER], client_user="sink")
    assert exposed.user("sink") is WRITER


def test_engine_errors_keep_their_code_and_text() -> None:
    error = QueryError.from_engine(
        "Code: 60. DB::Exception: Unknown table expression identifier 'nope'. (UNKNOWN_TABLE)"
    )
    assert (error.code, error.status) == (60, 404)
    assert error.body() == (
        b"Code: 60. DB::Exception: Unknown table expression identifier 'nope'. (UNKNOWN_TABLE)\n"
    )


def test_an_error_not_known_to_be_the_servers_is_the_askers() -> None:
    assert QueryError.from_engine("Code: 43. DB::Exception: Illegal type").status == 400
    assert QueryError.from_engine("Code: 49. DB::Exception: Logical error").status == 500
    assert QueryError.from_engine("no code at all").code == 1002
