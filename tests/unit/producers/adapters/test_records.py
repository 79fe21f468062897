"""producers.adapters.records: rows with their line numbers, and typed cells."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from producers.adapters.errors import InputFileError, RecordError
from producers.adapters.mapping import FileSpec, TimeSpec
from producers.adapters.records import (
    BadLine,
    Cells,
    Format,
    Record,
    file_format,
    read_records,
)


def rows(text: str, fmt: Format = "csv", columns: tuple[str, ...] = ()) -> list[Record | BadLine]:
    return list(read_records(text.splitlines(keepends=True), fmt, FileSpec(), columns))


def test_csv_rows_carry_the_line_they_start_on() -> None:
    text = 'id,note\n1,a\n\n2,"two\nlines"\n3,c\n'
    found = rows(text)
    assert [(r.line, dict(r.values)) for r in found if isinstance(r, Record)] == [
        (2, {"id": "1", "note": "a"}),
        (4, {"id": "2", "note": "two\nlines"}),
        (6, {"id": "3", "note": "c"}),
    ]


def test_csv_rows_with_the_wrong_field_count_are_bad_lines() -> None:
    found = rows("id,note\n1\n2,b,extra\n3,c\n")
    assert found[:2] == [
        BadLine(2, "1 fields, the header has 2"),
        BadLine(3, "3 fields, the header has 2"),
    ]
    assert isinstance(found[2], Record) and found[2].line == 4


def test_broken_quoting_is_a_bad_line_and_reading_goes_on() -> None:
    found = rows('id,note\n1,"a"b\n2,c\n')
    assert isinstance(found[0], BadLine) and found[0].line == 2
    assert found[0].reason.startswith("not valid CSV")
    assert found[1] == Record(3, {"id": "2", "note": "c"})


def test_csv_header_must_hold_every_mapped_column() -> None:
    with pytest.raises(InputFileError, match="not in the CSV header: queued, ended"):
        rows("\ufeffid,agent\n1,a\n", columns=("id", "queued", "ended"))


def test_csv_without_a_header_is_refused() -> None:
    with pytest.raises(InputFileError, match="no CSV header"):
        rows("")


def test_undecodable_bytes_make_a_bad_line() -> None:
    assert rows("id\n\ufffd1\n2\n")[0] == BadLine(
        2, "bytes that are not valid text in the mapped encoding"
    )
    assert rows('{"a": "\ufffd"}\n', "jsonl")[0].line == 1


def test_jsonl_rows_and_bad_lines() -> None:
    found = rows('{"a": 1}\n\n{"a": \n[1, 2]\n"text"\n{"a": {"b": 2}}\n', "jsonl")
    assert found[0] == Record(1, {"a": 1})
    assert isinstance(found[1], BadLine) and found[1].line == 3
    assert found[1].reason.startswith("not JSON")
    assert found[2] == BadLine(4, "a JSON list, not an object")
    assert found[3] == BadLine(5, "a JSON str, not an object")
    assert found[4] == Record(6, {"a": {"b": 2}})


@pytest.mark.parametrize(
    ("name", "spec", "expected"),
    [
        ("x.csv", FileSpec(), "csv"),
        ("x.JSONL", FileSpec(), "jsonl"),
        ("x.ndjson", FileSpec(), "jsonl"),
        ("x.txt", FileSpec(format="csv"), "csv"),
    ],
)
def test_file_format(name: str, spec: FileSpec, expected: str) -> None:
    assert file_format(Path(name), spec) == expected


def test_unknown_extension_needs_a_format() -> None:
    with pytest.raises(InputFileError, match=r"set file\.format"):
        file_format(Path("x.txt"), FileSpec())


def cells(values: dict[str, Any], **time: str) -> Cells:
    return Cells(Record(7, values), FileSpec(null_values=frozenset({"", "NULL"})), TimeSpec(**time))


@pytest.mark.parametrize(
    ("value", "time", "expected"),
    [
        ("2025-03-03T10:00:00+01:00", {}, datetime(2025, 3, 3, 9, tzinfo=UTC)),
        ("2025-03-03T10:00:00Z", {}, datetime(2025, 3, 3, 10, tzinfo=UTC)),
        ("2025-03-03 10:00:00", {"timezone": "Europe/Paris"}, datetime(2025, 3, 3, 9, tzinfo=UTC)),
        (
            "03/07/2025 10:00",
            {"format": "%d/%m/%Y %H:%M", "timezone": "Europe/London"},
            datetime(2025, 7, 3, 9, tzinfo=UTC),  # British summer time
        ),
        (
            "2025-11-02 01:30",  # occurs twice in New York: the first one (EDT) is meant
            {"format": "%Y-%m-%d %H:%M", "timezone": "America/New_York"},
            datetime(2025, 11, 2, 5, 30, tzinfo=UTC),
        ),
        (1741000000, {"format": "epoch_seconds"}, datetime.fromtimestamp(1741000000, UTC)),
        ("1741000000500", {"format": "epoch_millis"}, datetime.fromtimestamp(1741000000.5, UTC)),
    ],
)
def test_timestamps(value: Any, time: dict[str, str], expected: datetime) -> None:
    parsed = cells({"t": value}, **time).time("queued_at", "t")
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "time"),
    [
        ("31/02/2025 10:00", {"format": "%d/%m/%Y %H:%M"}),
        ("yesterday", {}),
        (True, {"format": "epoch_seconds"}),
        ("1e400", {"format": "epoch_seconds"}),
        (12, {}),
    ],
)
def test_unreadable_timestamps_name_key_and_column(value: Any, time: dict[str, str]) -> None:
    with pytest.raises(RecordError, match=r"^queued_at \(column 't'\): cannot read"):
        cells({"t": value}, **time).time("queued_at", "t")


def test_empty_and_null_cells_are_none() -> None:
    c = cells({"a": "  ", "b": "NULL", "c": None})
    assert c.raw("a") is None and c.raw("b") is None and c.raw("c") is None
    assert c.raw("missing") is None and c.raw(None) is None
    with pytest.raises(RecordError, match=r"^contact_id \(column 'a'\): empty$"):
        c.required_text("contact_id", "a")


def test_dotted_columns_reach_into_nested_json() -> None:
    c = cells({"customer": {"card": "L1", "tier": None}, "flat.name": "x", "n": 3})
    assert c.text("loyalty_id", "customer.card") == "L1"
    assert c.raw("customer.tier") is None and c.raw("n.deeper") is None
    assert c.text("x", "flat.name") == "x"


@pytest.mark.parametrize(
    ("value", "number"),
    [("12.5", 12.5), (" -3 ", -3.0), (7, 7.0), (0.25, 0.25)],
)
def test_numbers(value: Any, number: float) -> None:
    assert cells({"n": value}).number("amount", "n") == number


@pytest.mark.parametrize("value", ["12,5x", "nan", "inf", True, [1]])
def test_bad_numbers(value: Any) -> None:
    with pytest.raises(RecordError, match=r"^amount \(column 'n'\): not a number$"):
        cells({"n": value}).number("amount", "n")


@pytest.mark.parametrize(("value", "count"), [("3", 3), (0, 0), ([1, 2], 2), ([], 0)])
def test_counts(value: Any, count: int) -> None:
    assert cells({"n": value}).count("items", "n") == count


@pytest.mark.parametrize("value", ["two", "-1", -1, 1.5, True, {"a": 1}, "²", "٣"])
def test_bad_counts(value: Any) -> None:
    with pytest.raises(RecordError, match="not a count"):
        cells({"n": value}).count("items", "n")


def test_text_of_numbers_and_of_objects() -> None:
    assert cells({"n": 42}).text("store_id", "n") == "42"
    with pytest.raises(RecordError, match="expected text"):
        cells({"n": {"a": 1}}).text("store_id", "n")
