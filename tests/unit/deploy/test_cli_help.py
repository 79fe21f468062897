"""Every `journeys` command explains itself with --help."""

from __future__ import annotations

import pytest

from deploy.cli import _parser, main

COMMANDS = [
    [],
    ["broker"],
    ["broker", "start"],
    ["broker", "stop"],
    ["broker", "status"],
    ["broker", "run"],
    ["broker", "fetch"],
    ["topics"],
    ["db"],
    ["db", "migrate"],
    ["db", "ddl"],
    ["process"],
    ["sink"],
    ["publish"],
    ["generate"],
    ["report"],
    ["demo"],
    ["identity"],
    ["identity", "show"],
    ["definitions"],
    ["definitions", "check"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "journeys")
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        _parser().parse_args([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: journeys")
    assert len(out.splitlines()) > 3


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out


def test_unreachable_kafka_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("JOURNEYS_LOG_LEVEL", "ERROR")
    assert main(["topics"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "127.0.0.1:1" in err[0] and "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS" in err[0]


def test_unreachable_clickhouse_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_CLICKHOUSE__DSN", "http://user:secret@127.0.0.1:1/journeys")
    assert main(["db", "migrate"]) == 2
    err = capsys.readouterr().err.strip()
    assert "JOURNEYS_CLICKHOUSE__DSN" in err and "127.0.0.1:1" in err
    assert "secret" not in err
