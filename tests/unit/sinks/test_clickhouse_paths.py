"""Where an embedded ClickHouse is: only commands that write create a folder, a reader
pointed where no journeys database is says so in one line, and relative folders are taken
from the working directory."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from deploy.cli import main
from schemas.settings import load_settings
from sinks.clickhouse import NoJourneysDataError, connect, migrate, reading, session


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("JOURNEYS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_a_reader_never_creates_a_folder(tmp_path: Path) -> None:
    missing = tmp_path / "misspelt"
    with pytest.raises(NoJourneysDataError) as refused, reading(f"chdb://{missing}"):
        pass
    assert str(refused.value) == (
        f"no ClickHouse data at {missing}: run the pipeline there first, or point "
        "JOURNEYS_CLICKHOUSE__DSN at its data"
    )
    assert not missing.exists()


def test_a_reader_of_a_folder_without_journeys_tables_says_so(tmp_path: Path) -> None:
    with session(f"chdb://{tmp_path / 'other'}") as client:  # a writer: it creates
        client.command("CREATE TABLE unrelated (x UInt8) ENGINE = Memory")
    other = f"chdb://{tmp_path / 'other'}"
    with (
        pytest.raises(NoJourneysDataError, match="holds no journeys tables: point J"),
        reading(other),
    ):
        pass


def test_a_writer_creates_the_folder_and_says_where(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "sinks.clickhouse")
    folder = tmp_path / "new"
    client = connect(f"chdb://{folder}")
    try:
        migrate(client)
    finally:
        client.close()
    assert folder.is_dir()
    assert f"a new embedded database at {folder}" in caplog.text
    with reading(f"chdb://{folder}") as client:
        assert client.query("SELECT count() FROM touchpoints").result_rows == [(0,)]


@pytest.mark.parametrize("dsn", ["chdb:data/ch", "chdb://data/ch", "chdb:./data/ch"])
def test_a_relative_folder_is_taken_from_the_working_directory(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_CLICKHOUSE__DSN", dsn)
    settings = load_settings()
    assert settings.clickhouse_dsn == f"chdb://{tmp_path / 'data' / 'ch'}"
    assert settings.clickhouse.relative_folder == dsn


@pytest.mark.parametrize("dsn", ["chdb:/abs/ch", "chdb:///abs/ch"])
def test_an_absolute_folder_stays(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_CLICKHOUSE__DSN", dsn)
    settings = load_settings()
    assert settings.clickhouse_dsn == "chdb:///abs/ch"
    assert settings.clickhouse.relative_folder is None


def test_a_command_reading_a_relative_folder_logs_where_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_CLICKHOUSE__DSN", "chdb:misspelt")
    monkeypatch.setenv("JOURNEYS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("JOURNEYS_LOG_FORMAT", "text")
    assert main(["report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"ClickHouse is at chdb://{tmp_path / 'misspelt'}" in err[0]
    assert err[1:] == [
        f"journeys: error: no ClickHouse data at {tmp_path / 'misspelt'}: run the pipeline "
        "there first, or point JOURNEYS_CLICKHOUSE__DSN at its data"
    ]
    assert not (tmp_path / "misspelt").exists()
