"""Writing an answer for people (`table`) or programs (`json`: a list of objects, `csv`)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

import orjson

from deploy.query.answers import Answer

FORMATS = ("table", "json", "csv")


def render(answer: Answer, fmt: str) -> str:
    if fmt == "json":
        return as_json(answer)
    if fmt == "csv":
        return as_csv(answer)
    return as_table(answer)


def as_json(answer: Answer) -> str:
    records = [dict(zip(answer.columns, map(_plain, row), strict=True)) for row in answer.rows]
    return orjson.dumps(records, option=orjson.OPT_INDENT_2).decode()


def as_csv(answer: Answer) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(answer.columns)
    for row in answer.rows:
        writer.writerow(_text(v, lists_as_json=True) for v in row)
    return out.getvalue().rstrip("\n")


def as_table(answer: Answer) -> str:
    """Columns aligned, numbers to the right; text as it comes."""
    cells = [[_text(v) for v in row] for row in answer.rows]
    widths = [
        max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(answer.columns)
    ]
    numeric = [
        bool(answer.rows) and all(isinstance(row[i], int | float) for row in answer.rows)
        for i in range(len(answer.columns))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(answer.columns), *(line(row) for row in cells)])


def _plain(value: Any) -> Any:
    """JSON-ready: times as ISO 8601 in UTC, other values as they are."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(value: Any, lists_as_json: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, list | tuple):
        if lists_as_json:
            return orjson.dumps(_plain(value)).decode()
        return ", ".join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
