"""docs/tables.md: every table and view as ClickHouse has it once this version's schema is
applied, with the comments the definitions give (`sinks/tables.py`, `sinks/views.py`,
`sinks/definitions.py`).

`render` reads a migrated database's `system.tables` and `system.columns`, so the page shows
what the DDL really made: the types ClickHouse gave the views' columns, engines and keys, and
the comments as stored. `python -m sinks.docs > docs/tables.md` renders it from an empty
embedded database; a unit test fails when the checked-in page differs.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from clickhouse_connect.driver.client import Client

from sinks.clickhouse import migrate, session
from sinks.tables import metadata
from sinks.views import VIEWS

COMMAND = "python -m sinks.docs > docs/tables.md"

INTRO = f"""# Tables and views

Generated from the table and view definitions (`sinks/tables.py`, `sinks/views.py`,
`sinks/definitions.py`) as ClickHouse stores them, by `{COMMAND}`: do not edit
by hand. The same text is each column's `COMMENT`, so `system.columns`, `DESCRIBE TABLE` and a
client's schema browser show it too.

What the words mean: `docs/concepts.md`; the questions the views answer and `journeys query`:
`docs/queries.md`. Times are UTC; event time is when a thing happened, not when the pipeline
saw it (`docs/concepts.md` §5). A ReplacingMergeTree table keeps every version of a row until
ClickHouse merges them: read it with `FINAL` to get one row per key (the highest `version`
where it has one, else the last inserted); the views already do.
"""


def render(client: Client) -> str:
    """The page for the database `client` opens (migrated, so every table and view exists)."""
    tables = {
        str(row[0]): tuple(str(value) for value in row)
        for row in client.query(
            "SELECT name, engine, engine_full, sorting_key, partition_key, comment "
            "FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    columns: dict[str, list[tuple[str, str, str]]] = {}
    for table, name, kind, comment in client.query(
        "SELECT table, name, type, comment FROM system.columns "
        "WHERE database = currentDatabase() ORDER BY table, position"
    ).result_rows:
        columns.setdefault(table, []).append((name, kind, comment))
    names = _in_order(tables)
    parts = [INTRO, _contents(names, tables)]
    for name in names:
        parts.append(_section(tables[name], columns.get(name, []), names))
    return "\n".join(parts)


def _in_order(tables: Iterable[str]) -> list[str]:
    """The tables in the order they are defined, then the views in the order they are made,
    then anything else the database holds, by name."""
    known = [*metadata.tables, *VIEWS]
    present = set(tables)
    return [n for n in known if n in present] + sorted(present - set(known))


def _contents(names: Sequence[str], tables: dict[str, tuple[str, ...]]) -> str:
    listed = {
        kind: ", ".join(f"[`{n}`](#{n})" for n in names if (tables[n][1] == "View") == is_view)
        for kind, is_view in (("Tables", False), ("Views", True))
    }
    return "\n".join(f"{kind}: {text}." for kind, text in listed.items()) + "\n"


def _section(
    table: tuple[str, ...], columns: Sequence[tuple[str, str, str]], names: Iterable[str]
) -> str:
    name, comment = table[0], table[-1]
    lines = [f"## {name}", "", _cell(comment) or "(no comment)", "", _storage(table, names), ""]
    lines += ["| column | type | meaning |", "|---|---|---|"]
    for column, kind, text in columns:
        lines.append(f"| `{column}` | `{_cell(kind)}` | {_cell(text) or '(no comment)'} |")
    return "\n".join(lines) + "\n"


def _storage(table: tuple[str, ...], names: Iterable[str]) -> str:
    """Engine, order key, partitioning and version column; for a view, what it reads."""
    name, engine, engine_full, sorting_key, partition_key, _comment = table
    if engine == "View":
        named = set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", VIEWS.get(name, "")))
        sources = ", ".join(f"`{n}`" for n in names if n in named)
        return f"View, made again by every `journeys db migrate`; reads {sources}."
    text = f"{engine}, ordered by `({sorting_key.removeprefix('(').removesuffix(')')})`"
    if partition_key:
        text += f", partitioned by `{partition_key}`"
    version = re.search(rf"{engine}\((\w+)\)", engine_full)
    if engine.startswith("Replacing"):
        keeps = f"the highest `{version.group(1)}`" if version else "the last inserted"
        text += f"; per order key {keeps} wins (read with `FINAL`)"
    return text + "."


def _cell(text: str) -> str:
    """Text that stays in one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    """Print the page for this version's schema, applied to an empty embedded database."""
    with (
        tempfile.TemporaryDirectory() as folder,
        session(f"chdb://{Path(folder) / 'clickhouse'}") as client,
    ):
        migrate(client)
        sys.stdout.write(render(client))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
