"""Every column of every table and view carries a ClickHouse `COMMENT`, read back from a
migrated embedded database (so the DDL really carries them), and docs/tables.md is what
`sinks.docs` renders from it now."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import migrate, session
from sinks.docs import COMMAND, render
from sinks.tables import comment_changes, metadata
from sinks.views import VIEW_DOCS, VIEWS

ROOT = Path(__file__).resolve().parents[3]
NAMES = sorted({*metadata.tables, *VIEWS})


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("comments") / "clickhouse"
    with session(f"chdb://{path}") as client:
        migrate(client)
        yield client


def stored(client: Client) -> dict[str, dict[str, str]]:
    """Each table's and view's columns and their comments, as ClickHouse has them."""
    rows = client.query(
        "SELECT table, name, comment FROM system.columns WHERE database = currentDatabase() "
        "ORDER BY table, position"
    ).result_rows
    found: dict[str, dict[str, str]] = {}
    for table, name, comment in rows:
        found.setdefault(table, {})[name] = comment
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_column_has_a_comment(migrated: Client, name: str) -> None:
    columns = stored(migrated)[name]
    missing = [column for column, comment in columns.items() if not comment.strip()]
    where = "sinks/views.py VIEW_DOCS" if name in VIEW_DOCS else "its Column(..., comment=...)"
    assert columns and missing == [], f"{name}: columns without a comment ({where}): {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_every_table_and_view_says_what_it_holds(migrated: Client, name: str) -> None:
    ((comment,),) = migrated.query(
        "SELECT comment FROM system.tables "
        "WHERE database = currentDatabase() AND name = {n:String}",
        parameters={"n": name},
    ).result_rows
    assert comment.strip()


@pytest.mark.parametrize("view", sorted(VIEW_DOCS))
def test_view_docs_name_only_columns_the_view_has(migrated: Client, view: str) -> None:
    stale = set(VIEW_DOCS[view].columns) - set(stored(migrated)[view])
    assert stale == set(), f"{view}: VIEW_DOCS documents columns it does not have: {stale}"


def test_a_migrated_database_needs_no_comment_changes(migrated: Client) -> None:
    assert comment_changes(stored(migrated)) == []


def test_docs_tables_md_is_what_the_definitions_render(migrated: Client) -> None:
    page = ROOT / "docs" / "tables.md"
    assert page.read_text(encoding="utf-8") == render(migrated), (
        f"docs/tables.md is stale: regenerate it with `.venv/bin/{COMMAND}`"
    )
