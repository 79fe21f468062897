"""schemas.definitions and `journeys definitions check`: the shipped definitions are the
simulator's journeys, and a bad file gets every error with its line and path."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

import pytest

from deploy.commands import definitions as command
from producers.adapters.pos import SALE_TYPES
from producers.simulator.catalog import JOURNEYS, Journey
from schemas.config_files import ConfigFileError
from schemas.definitions import (
    DefinitionSpec,
    check_file,
    check_files,
    load_definition,
    load_definitions,
    parse_duration,
)
from schemas.settings import Settings

SHIPPED = Path(__file__).resolve().parents[3] / "deploy" / "definitions"
VALID = """\
id = "returns"
version = 2
reopen_window = "30m"

[[stages]]
name = "request"
time_limit = "2d"
  [[stages.match]]
  event_types = ["return_requested"]

[[stages]]
name = "refunded"
success = true
  [[stages.match]]
  channels = ["store"]
  event_types = ["refund"]
  properties = { method = ["card", "cash"] }
"""


def write(tmp_path: Path, text: str, name: str = "d.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def where(tmp_path: Path, text: str) -> list[tuple[int | None, str, str]]:
    spec, problems = check_file(write(tmp_path, text))
    assert spec is None
    return [(p.line, p.key, p.message) for p in problems]


# -- the shipped files are the simulator's catalog --------------------------------------

# What `journeys ingest store` writes for a sale (its type is its event type).
ADAPTER_EVENTS = {("store", sale) for sale in SALE_TYPES if sale != "return"}


@pytest.mark.parametrize("journey", JOURNEYS, ids=lambda j: j.name)
def test_shipped_definition_matches_the_simulator_catalog(journey: Journey) -> None:
    spec = load_definition(SHIPPED / f"{journey.name}.toml")
    assert spec.id == journey.name
    assert [s.name for s in spec.stages] == [s.name for s in journey.stages]
    for stage, sim in zip(spec.stages, journey.stages, strict=True):
        assert stage.time_limit == sim.limit
        assert stage.success == (sim.limit is None)
        emitted = {(ch, et) for ch, pairs in sim.events.items() for et, _tp in pairs}
        matched = {
            (ch.value, et)
            for rule in stage.match
            for ch in rule.channels
            for et in rule.event_types
        }
        # Beside the simulator's events, a stage may match what the adapters write.
        assert matched - ADAPTER_EVENTS == emitted
        for rule in stage.match:
            assert rule.properties == dict(sim.properties)


def test_shipped_definitions_load_together() -> None:
    specs = load_definitions(sorted(SHIPPED.glob("*.toml")))
    assert sorted(s.id for s in specs) == ["purchase", "support"]
    assert all(s.reopen_window == timedelta(hours=2) for s in specs)


def test_a_valid_file_with_every_option(tmp_path: Path) -> None:
    spec = load_definition(write(tmp_path, VALID))
    assert (spec.id, spec.version, spec.reopen_window) == ("returns", 2, timedelta(minutes=30))
    assert spec.stages[0].time_limit == timedelta(days=2)
    assert spec.stages[1].match[0].properties == {"method": ["card", "cash"]}
    assert spec.entries == ["request"]


# -- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30m", 1800),
        ("24h", 86400),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("500ms", 0.5),
        ("90", None),
        (90, 90),
        (1.5, 1.5),
    ],
)
def test_durations(value: object, seconds: float | None) -> None:
    if seconds is None:
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(value)
    else:
        assert parse_duration(value).total_seconds() == seconds


@pytest.mark.parametrize("value", ["", "soon", "1x", "h", 0, -5, "0s", True, None])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


# -- errors, each with its location -----------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "line", "path", "message"),
    [
        (("version = 2", "version = 0"), 2, "version", "greater than or equal to 1"),
        (('id = "returns"', 'id = "Returns Desk"'), 1, "id", "lower-case letters"),
        (('reopen_window = "30m"', 'reopen_windw = "30m"'), 3, "reopen_windw", "unknown key"),
        (('time_limit = "2d"', 'time_limit = "soon"'), 7, "stages[0].time_limit", "not a duration"),
        (('time_limit = "2d"\n', ""), 5, "stages[0].time_limit", "required on a stage before"),
        (
            ('["return_requested"]', '["return_requested"]\n  channels = ["fax"]'),
            10,
            "stages[0].match[0].channels[0]",
            "'web', 'app', 'call_center' or 'store'",
        ),
        (
            ("success = true", 'success = true\ntime_limit = "1h"'),
            14,
            "stages[1].time_limit",
            "no time limit",
        ),
        (
            ('["card", "cash"]', "{ nested = 1 }"),
            17,
            "stages[1].match[0].properties.method",
            "a property rule is a value",
        ),
        (
            ('name = "refunded"', 'name = "request"'),
            12,
            "stages[1].name",
            "also the name of stages[0]",
        ),
        (("success = true\n", ""), None, "stages", "no stage has success = true"),
        (
            ('  event_types = ["refund"]\n  properties = { method = ["card", "cash"] }\n', ""),
            14,
            "stages[1].match[0]",
            "matches every event",
        ),
    ],
)
def test_each_error_names_its_line_and_path(
    tmp_path: Path, edit: tuple[str, str], line: int | None, path: str, message: str
) -> None:
    assert edit[0] in VALID
    found = where(tmp_path, VALID.replace(edit[0], edit[1], 1))
    assert any(p == path and message in m and (line is None or n == line) for n, p, m in found), (
        found
    )


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        VALID.replace("version = 2", "version = 0")
        .replace('time_limit = "2d"', 'time_limit = "soon"')
        .replace("success = true", "success = true\nfailure = true")
    )
    paths = {p for _, p, _ in where(tmp_path, text)}
    assert {"version", "stages[0].time_limit", "stages[1].failure"} <= paths


def test_the_success_stage_must_end_the_ordered_path(tmp_path: Path) -> None:
    text = VALID + '\n[[stages]]\nname = "later"\n  [[stages.match]]\n  event_types = ["x"]\n'
    found = where(tmp_path, text)
    assert "stages[1].success" in {p for _, p, _ in found}, found


def test_failure_stages_may_follow_the_success_stage(tmp_path: Path) -> None:
    text = VALID + (
        '\n[[stages]]\nname = "cancelled"\nfailure = true\n'
        '  [[stages.match]]\n  event_types = ["return_cancelled"]\n'
    )
    spec = load_definition(write(tmp_path, text))
    assert [s.name for s in spec.ordered] == ["request", "refunded"]


def test_entry_stages_must_exist(tmp_path: Path) -> None:
    text = 'entry_stages = ["request", "nope"]\n' + VALID
    assert (1, "entry_stages[1]", "'nope' is not a stage of the ordered path") in where(
        tmp_path, text
    )


def test_toml_syntax_errors_carry_their_line(tmp_path: Path) -> None:
    found = where(tmp_path, VALID.replace("version = 2", "version = = 2"))
    assert len(found) == 1
    assert found[0][0] == 2 and "not valid TOML" in found[0][2]


def test_unreadable_file(tmp_path: Path) -> None:
    spec, problems = check_file(tmp_path / "missing.toml")
    assert spec is None and "cannot read the file" in str(problems[0])


def test_two_files_cannot_define_the_same_id(tmp_path: Path) -> None:
    first, second = write(tmp_path, VALID, "a.toml"), write(tmp_path, VALID, "b.toml")
    specs, problems = check_files([first, second])
    assert [s.id for s in specs] == ["returns"]
    assert [(p.file, p.key, p.line) for p in problems] == [(str(second), "id", 1)]
    with pytest.raises(ConfigFileError) as caught:
        load_definitions([first, second])
    assert f"{second}:1: id: 'returns' is also defined in {first}" in str(caught.value)


# -- journeys definitions check ---------------------------------------------------------------


def run(files: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="journeys")
    command.register(parser.add_subparsers())
    args = parser.parse_args(["definitions", "check", *files])
    return int(args.func(Settings(), args))


def test_check_summarizes_valid_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([str(write(tmp_path, VALID))]) == 0
    out = capsys.readouterr().out
    assert "returns v2: request (48h) -> refunded; channels store; reopen window 30m" in out


def test_check_defaults_to_the_shipped_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "purchase v1: discover (24h) -> consider (48h) -> cart (24h) -> checkout (1h)" in out[0]


def test_check_lists_every_error_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, VALID.replace("version = 2", "version = 0").replace('"2d"', '"x"'))
    good = write(tmp_path, VALID.replace('"returns"', '"other"'), "good.toml")
    assert run([str(bad), str(good)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines[0].startswith(f"{bad}:2: version: ")
    assert lines[1].startswith(f"{bad}:7: stages[0].time_limit: ")
    assert lines[-1] == "2 error(s) in 1 of 2 file(s)"
    assert captured.out == ""


def test_summary_shows_options() -> None:
    spec = DefinitionSpec.model_validate(
        {
            "id": "x",
            "version": 1,
            "lifetime": "14d",
            "hold_constant": "order_id",
            "stages": [
                {"name": "a", "time_limit": 90, "match": [{"event_types": ["a"]}]},
                {"name": "b", "success": True, "match": [{"event_types": ["b"]}]},
                {"name": "c", "failure": True, "match": [{"event_types": ["c"]}]},
            ],
        }
    )
    assert command.summary(spec) == (
        "x v1: a (90s) -> b; channels any; failure stages c; lifetime 14d; same order_id throughout"
    )
