"""sinks.core.failures: what the sink waits out, what ClickHouse refused, and the backoff."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from confluent_kafka import KafkaError

from sinks.core.failures import (
    RETRIABLE_KAFKA_CODES,
    Backoff,
    classify,
    clickhouse_failure,
    error_code,
    kafka_retriable,
    no_answer,
)

PARTITIONS = (
    "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). "
    "The limit is controlled by 'max_partitions_per_insert_block' setting."
)
PARTS = "Code: 252. DB::Exception: Too many parts (300 with average size of 1.00 MiB) in table"


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (159, "Code: 159. Timeout exceeded: elapsed 30 seconds", "timeout"),
        (202, "Too many simultaneous queries. Maximum: 100", "overloaded"),
        (209, "Timeout exceeded while reading from socket", "timeout"),
        (210, "Connection refused (localhost:9000)", "unreachable"),
        (241, "Memory limit (total) exceeded", "memory"),
        (242, "Table is in readonly mode", "readonly"),
        (243, "Cannot reserve 1.00 MiB, not enough space", "disk"),
        (425, "System error: No such file or directory", "system"),
        (252, PARTS, "too_many_parts"),
        (319, "Unknown status of insert", "unknown_status"),
        # The deployment, not the rows: waiting beats dead-lettering everything.
        (60, "Table journeys.touchpoints does not exist", "setup"),
        (81, "Database journeys does not exist", "setup"),
        (164, "Cannot execute query in readonly mode", "setup"),
        (516, "default: Authentication failed", "setup"),
        (497, "Not enough privileges", "setup"),
    ],
)
def test_transient_codes(code: int, text: str, kind: str) -> None:
    failure = classify(code, text)
    assert (failure.transient, failure.kind, failure.code) == (True, kind, code)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (252, PARTITIONS),
        (26, "Cannot parse quoted string"),
        (27, "Cannot parse input: expected '\"' before: 'abc'"),
        (38, "Cannot parse date"),
        (41, "Cannot parse datetime"),
        (53, "Type mismatch in IN or VALUES section"),
        (72, "Cannot parse number"),
        (117, "Incorrect data: unknown field"),
        (376, "Cannot parse UUID from String"),
        (6, "Cannot parse string 'abc' as UInt32"),
    ],
)
def test_refusals_about_the_rows(code: int, text: str) -> None:
    failure = classify(code, f"Code: {code}. DB::Exception: {text}")
    assert (failure.transient, failure.kind, failure.code) == (False, f"code_{code}", code)


@pytest.mark.parametrize(
    ("text", "transient", "kind"),
    [
        ("HTTP driver received HTTP status 503, server response: overloaded", True, "http_503"),
        ("HTTP driver received HTTP status 502", True, "http_502"),
        ("HTTP driver received HTTP status 401", True, "http_401"),
        ("HTTP driver received HTTP status 413", False, "http_413"),  # smaller pieces fit
        ("something nobody foresaw", True, "unknown"),
    ],
)
def test_answers_without_a_code(text: str, transient: bool, kind: str) -> None:
    failure = classify(None, text)
    assert (failure.transient, failure.kind) == (transient, kind)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Failed to establish a new connection: [Errno 111] Connection refused", "unreachable"),
        ("Connection reset by peer", "unreachable"),
        ("Read timed out. (read timeout=300)", "timeout"),
    ],
)
def test_no_answer_at_all_is_transient(text: str, kind: str) -> None:
    failure = classify(None, text, unreachable=True)
    assert (failure.transient, failure.kind) == (True, kind)


def test_error_code_from_the_driver_attribute_or_the_text() -> None:
    assert error_code(DatabaseError("whatever", code=27)) == 27
    assert error_code(RuntimeError("Code: 376. DB::Exception: Cannot parse UUID")) == 376
    assert error_code(DatabaseError("Received ClickHouse exception, code: 53, ...")) == 53
    assert error_code(OSError("Connection refused")) is None


def test_clickhouse_failure_of_exceptions() -> None:
    refused = clickhouse_failure(DatabaseError(PARTITIONS, code=252), unreachable=False)
    assert (refused.transient, refused.kind, refused.code) == (False, "code_252", 252)
    down = clickhouse_failure(OperationalError("Connection refused\n  twice"), unreachable=True)
    assert (down.transient, down.kind, down.text) == (
        True,
        "unreachable",
        "Connection refused twice",
    )


@pytest.mark.parametrize(
    ("name", "marked", "retriable"),
    [
        ("_WAIT_COORD", False, True),
        ("NOT_COORDINATOR", False, True),
        ("COORDINATOR_LOAD_IN_PROGRESS", False, True),
        ("COORDINATOR_NOT_AVAILABLE", False, True),
        ("REQUEST_TIMED_OUT", False, True),
        ("_TIMED_OUT", False, True),
        ("_TRANSPORT", False, True),
        ("REBALANCE_IN_PROGRESS", False, True),
        ("UNKNOWN_TOPIC_OR_PART", True, True),  # Kafka says so
        ("GROUP_AUTHORIZATION_FAILED", False, False),
        ("OFFSET_METADATA_TOO_LARGE", False, False),
        ("_FATAL", False, False),
    ],
)
def test_kafka_retriable(name: str, marked: bool, retriable: bool) -> None:
    assert kafka_retriable(getattr(KafkaError, name), marked) is retriable


def test_the_retriable_kafka_codes_are_librdkafkas() -> None:
    named = {
        getattr(KafkaError, n)
        for n in (
            "_TIMED_OUT",
            "_TRANSPORT",
            "_ALL_BROKERS_DOWN",
            "_WAIT_COORD",
            "_WAIT_CACHE",
            "_IN_PROGRESS",
            "REQUEST_TIMED_OUT",
            "COORDINATOR_LOAD_IN_PROGRESS",
            "COORDINATOR_NOT_AVAILABLE",
            "NOT_COORDINATOR",
            "ILLEGAL_GENERATION",
            "UNKNOWN_MEMBER_ID",
            "REBALANCE_IN_PROGRESS",
        )
    }
    assert named == RETRIABLE_KAFKA_CODES


def test_backoff_doubles_from_half_a_second_to_a_cap() -> None:
    backoff = Backoff(first=0.5, cap=30.0)
    assert [backoff.delay(n) for n in range(0, 9)] == [0, 0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(10_000) == 30.0


@pytest.mark.parametrize(
    ("exc", "answered"),
    [
        (ConnectionRefusedError(111, "Connection refused"), False),
        (TimeoutError("timed out"), False),
        (OperationalError("Error HTTPConnectionPool(...): Connection refused"), False),
        (OperationalError("HTTP driver received HTTP status 503"), True),
        (OperationalError("Received ClickHouse exception", code=202), True),
        (DatabaseError("Code: 27. Cannot parse input", code=27), True),
    ],
)
def test_no_answer(exc: BaseException, answered: bool) -> None:
    assert no_answer(exc) is not answered
    assert clickhouse_failure(exc).transient or answered
