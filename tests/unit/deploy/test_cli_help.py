"""Every `journeys` command explains itself with --help, with an example of itself."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator

import pytest

from deploy.cli import _parser, main


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[list[str]]:
    """Every command path of the parser's tree, the root (`[]`) first."""
    yield list(path)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


COMMANDS = list(_commands(_parser()))


def test_the_walk_finds_nested_commands() -> None:
    assert ["broker", "start"] in COMMANDS and ["ingest", "call-center"] in COMMANDS
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "journeys")
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        _parser().parse_args([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(" ".join(["usage: journeys", *command]))
    assert len(out.splitlines()) > 3
    # Examples are `journeys ...` in backticks in the epilog (wrapped: rejoin the lines).
    found = re.findall(r"`(journeys(?: [^`]*)?)`", " ".join(out.split()))
    ours = [e for e in found if f"{e} ".startswith(" ".join(["journeys", *command, ""]))]
    assert "Example" in out and ours, f"no example of `journeys {' '.join(command)}`:\n{out}"
    for example in ours:
        argv = shlex.split(example)[1:]
        if any("<" in arg or arg.endswith("...") for arg in argv):
            continue  # a placeholder: `journeys identity show <person uuid>`
        try:
            _parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"the example `{example}` is not a valid command line")


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
