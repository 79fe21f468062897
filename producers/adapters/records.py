"""Records of an export file (CSV or JSON Lines) and typed access to their cells.

Reading yields a `Record` per data row, or a `BadLine` with its line number and reason, so one
broken row never stops a file. `Cells` reads a record's values through the mapping: empty and
null cells are `None`, and every parse error names the mapping key and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from producers.adapters.errors import InputFileError, RecordError
from producers.adapters.mapping import FileSpec, TimeSpec

Format = Literal["csv", "jsonl"]
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Files are decoded with errors="replace"; a replacement character marks undecodable bytes.
_UNDECODABLE = "\ufffd"


@dataclass(frozen=True, slots=True)
class Record:
    """One data row: the line it starts on and its values by column name."""

    line: int
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BadLine:
    """A row that could not be read at all, and why."""

    line: int
    reason: str


def file_format(path: Path, spec: FileSpec) -> Format:
    """The mapping's `file.format`, else the one the file's extension names."""
    if spec.format is not None:
        return spec.format
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise InputFileError("cannot tell CSV from JSON Lines by the extension; set file.format")
    return found


def read_records(
    lines: Iterable[str], fmt: Format, spec: FileSpec, columns: Collection[str]
) -> Iterator[Record | BadLine]:
    """The rows of an open text file. `columns` are the mapped ones: a CSV header is read and
    checked right away, so a missing column fails the whole file before anything is sent."""
    if fmt == "jsonl":
        return _jsonl_records(lines)
    reader = csv.reader(lines, delimiter=spec.delimiter, strict=True)
    header = _header(reader)
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputFileError(f"mapped columns not in the CSV header: {', '.join(missing)}")
    return _csv_records(reader, header)


class CsvReader(Protocol):
    """What we use of a `csv.reader` (whose type has no public name)."""

    line_num: int

    def __next__(self) -> list[str]: ...


def _csv_records(reader: CsvReader, header: list[str]) -> Iterator[Record | BadLine]:
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadLine(start, f"not valid CSV ({exc})")
            start = reader.line_num + 1
            continue
        if row:  # csv yields [] for a blank line
            yield _csv_row(start, header, row)
        start = reader.line_num + 1


def _header(reader: CsvReader) -> list[str]:
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise InputFileError("no CSV header line") from None
    return [name.strip().lstrip("\ufeff") for name in header]


def _csv_row(line: int, header: list[str], row: list[str]) -> Record | BadLine:
    if len(row) != len(header):
        return BadLine(line, f"{len(row)} fields, the header has {len(header)}")
    if any(_UNDECODABLE in cell for cell in row):
        return BadLine(line, "bytes that are not valid text in the mapped encoding")
    return Record(line, dict(zip(header, row, strict=True)))


def _jsonl_records(lines: Iterable[str]) -> Iterator[Record | BadLine]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if _UNDECODABLE in text:
            yield BadLine(number, "bytes that are not valid text in the mapped encoding")
            continue
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield BadLine(number, f"not JSON ({exc.msg})")
            continue
        if not isinstance(doc, dict):
            yield BadLine(number, f"a JSON {type(doc).__name__}, not an object")
            continue
        yield Record(number, doc)


class Cells:
    """A record's values read through the mapping; errors name the mapping key and column."""

    def __init__(self, record: Record, spec: FileSpec, time: TimeSpec) -> None:
        self._values = record.values
        self._nulls = spec.null_values
        self._time = time

    def raw(self, column: str | None) -> Any:
        """The value, or `None` when the column is unmapped, absent, null or empty."""
        if column is None:
            return None
        value = _lookup(self._values, column)
        if isinstance(value, str):
            value = value.strip()
            return None if value in self._nulls else value
        return value

    def text(self, key: str, column: str | None) -> str | None:
        value = self.raw(column)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecordError(f"{_where(key, column)}: expected text, got {_kind(value)}")
        return str(value)

    def required_text(self, key: str, column: str) -> str:
        value = self.text(key, column)
        if value is None:
            raise RecordError(f"{_where(key, column)}: empty")
        return value

    def time(self, key: str, column: str | None) -> datetime | None:
        value = self.raw(column)
        if value is None:
            return None
        try:
            return _parse_time(value, self._time)
        except (ValueError, TypeError, OverflowError, OSError):
            raise RecordError(
                f"{_where(key, column)}: cannot read the value as {self._time.format}"
            ) from None

    def required_time(self, key: str, column: str) -> datetime:
        value = self.time(key, column)
        if value is None:
            raise RecordError(f"{_where(key, column)}: empty")
        return value

    def number(self, key: str, column: str | None) -> float | None:
        value = self.raw(column)
        if value is None:
            return None
        try:
            number = _to_number(value)
        except ValueError:
            raise RecordError(f"{_where(key, column)}: not a number") from None
        return number

    def count(self, key: str, column: str | None) -> int | None:
        """A non-negative count; a JSON list counts its entries."""
        value = self.raw(column)
        if value is None:
            return None
        if isinstance(value, list):
            return len(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        raise RecordError(f"{_where(key, column)}: not a count ({_kind(value)})")


def _kind(value: object) -> str:
    """What a value is, never the value: record errors reach dead letters and logs, and a
    misplaced column may hold a phone number or an e-mail."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "text" if isinstance(value, str) else type(value).__name__


def _where(key: str, column: str | None) -> str:
    return f"{key} (column {column!r})"


def _lookup(values: Mapping[str, Any], column: str) -> Any:
    """A column by name; in nested JSON, `a.b` reaches `{"a": {"b": ...}}`."""
    if column in values or "." not in column:
        return values.get(column)
    node: Any = values
    for part in column.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _to_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _parse_time(value: Any, spec: TimeSpec) -> datetime:
    if isinstance(value, bool):
        raise TypeError(value)
    if spec.format in ("epoch_seconds", "epoch_millis"):
        scale = 1000.0 if spec.format == "epoch_millis" else 1.0
        return datetime.fromtimestamp(_to_number(value) / scale, UTC)
    if not isinstance(value, str):
        raise TypeError(value)
    if spec.format == "iso":
        parsed = datetime.fromisoformat(value)
    else:
        parsed = datetime.strptime(value, spec.format)
    if parsed.tzinfo is None:
        # Local wall time in the export's zone; an ambiguous time at a DST change reads as
        # its first occurrence (fold=0), as most contact-center and POS systems record it.
        parsed = parsed.replace(tzinfo=spec.zone)
    return parsed.astimezone(UTC)
