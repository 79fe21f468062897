"""schemas.config_files: the one way configuration files load, and how a bad one fails
(FILE:LINE: key: reason, every problem listed); the four kinds of file all go through it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from producers.adapters.mapping import ContactCenterMapping, MappingBase, PosMapping, load_mapping
from schemas.alerting import load_alert_routing
from schemas.config_files import (
    ConfigFileError,
    Found,
    Problem,
    TomlFile,
    key_lines,
    load_config,
)
from schemas.definitions import load_definition, load_definitions
from schemas.friction import load_configured_mapping, load_friction_mapping
from schemas.settings import FrictionSettings

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "deploy").glob("*/*.toml"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_Strict):
    size: int
    label: str = ""


class Entry(_Strict):
    name: str
    limits: Limits
    tags: list[str] = []


class Doc(_Strict):
    version: int
    entry: list[Entry] = []
    limits: dict[str, Limits] = {}

    @field_validator("version")
    @classmethod
    def _allowed(cls, value: int, info: ValidationInfo) -> int:
        allowed = (info.context or {}).get("allowed", (1,))
        if value not in allowed:
            raise ValueError(f"{value} is not one of {allowed}")
        return value


GOOD = """\
version = 1

[[entry]]
name = "a"
  [entry.limits]
  size = 1

[[entry]]
name = "b"
tags = ["x", "y"]
  [entry.limits]
  size = 2
  label = "two"

[limits.web]
size = 3
"""


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def failure(path: Path, model: type[BaseModel] = Doc, **kwargs: Any) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as caught:
        load_config(path, model, what="test file", **kwargs)
    return caught.value


def test_a_valid_file_loads(tmp_path: Path) -> None:
    doc = load_config(write(tmp_path, GOOD), Doc, what="test file")
    assert [e.limits.size for e in doc.entry] == [1, 2]
    assert doc.limits["web"].size == 3


def test_a_toml_syntax_error_is_one_problem_with_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('name = "b"', 'name = = "b"'))
    error = failure(path)
    assert isinstance(error, ValueError)
    assert error.file == path and error.what == "test file"
    (problem,) = error.problems
    assert (problem.file, problem.key, problem.line, problem.column) == (str(path), "", 9, 8)
    assert str(problem) == f"{path}:9:8: not valid TOML: Invalid value"
    assert str(error) == f"invalid test file:\n  {path}:9:8: not valid TOML: Invalid value"


def test_a_syntax_error_at_the_end_of_the_file_names_the_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version = 1\n[entry")
    (problem,) = failure(path).problems
    assert problem.line == 2 and problem.column is None
    assert str(problem).startswith(f"{path}:2: not valid TOML: ")
    assert "end of document" in problem.message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # a key in a table inside the second entry of an array of tables
        (("size = 2", 'size = "two"'), "12: entry[1].limits.size: Input should be a valid integer"),
        # a misspelt key: its own line
        (("  label", "  lable"), "13: entry[1].limits.lable: unknown key (misspelt?)"),
        # a missing key: the line of the table it belongs in
        (("  size = 1\n", ""), "5: entry[0].limits.size: required"),
        # an element of an array
        (('tags = ["x", "y"]', 'tags = ["x",\n  2]'), "11: entry[1].tags[1]: Input should be"),
        # a table named by a dotted header
        (("[limits.web]\nsize = 3", "[limits.web]\nsize = 3\nmore = 1"), "17: limits.web.more"),
        # the top level
        (("version = 1", "version = 7"), "1: version: 7 is not one of (1,)"),
    ],
)
def test_a_validation_error_names_the_line_of_its_key(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert edit[0] in GOOD
    path = write(tmp_path, GOOD.replace(edit[0], edit[1], 1))
    found = [str(p).removeprefix(f"{path}:") for p in failure(path).problems]
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_listed_in_line_order(tmp_path: Path) -> None:
    text = (
        GOOD.replace("version = 1", "version = 2")
        .replace('name = "a"', "nam = 'a'")
        .replace("size = 2", "size = []")
        .replace("size = 3", "size = 3\nextra = true")
    )
    path = write(tmp_path, text)
    error = failure(path)
    assert [(p.line, p.key) for p in error.problems] == [
        (1, "version"),
        (3, "entry[0].name"),  # missing: the entry's [[entry]] line
        (4, "entry[0].nam"),
        (12, "entry[1].limits.size"),
        (17, "limits.web.extra"),
    ]
    lines = str(error).splitlines()
    assert lines[0] == "invalid test file:"
    assert lines[1:] == [f"  {p}" for p in error.problems]
    assert all(line.startswith(f"  {path}:") for line in lines[1:])


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    error = failure(path)
    assert error.file == path
    assert [str(p) for p in error.problems] == [
        f"{path}: cannot read the file: No such file or directory"
    ]


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "café"\n'.encode("latin-1"))
    (problem,) = failure(path).problems
    assert problem.message.startswith("cannot read the file: not UTF-8")


def test_checks_on_the_raw_document_are_reported_beside_type_errors(tmp_path: Path) -> None:
    def names_differ(doc: dict[str, Any]) -> Found:
        names = [e.get("name") for e in doc.get("entry", [])]
        return [(("entry", i, "name"), "used twice") for i, n in enumerate(names) if n == "a"]

    path = write(tmp_path, GOOD.replace('"b"', '"a"').replace("size = 3", "size = 'x'"))
    error = failure(path, checks=names_differ)
    assert [(p.line, p.key, p.message) for p in error.problems][:2] == [
        (4, "entry[0].name", "used twice"),
        (9, "entry[1].name", "used twice"),
    ]
    assert error.problems[2].key == "limits.web.size"


def test_the_validation_context_reaches_the_model(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("version = 1", "version = 2"))
    assert load_config(path, Doc, what="x", context={"allowed": (1, 2)}).version == 2


def test_a_problem_without_a_line_or_key() -> None:
    assert str(Problem("f.toml", "", "empty")) == "f.toml: empty"
    assert str(Problem("f.toml", "a.b", "bad")) == "f.toml: a.b: bad"
    assert str(Problem("f.toml", "a", "bad", 3)) == "f.toml:3: a: bad"
    with pytest.raises(ValueError, match="at least one problem"):
        ConfigFileError("x", [])


# -- where keys are ------------------------------------------------------------------------------


def test_key_lines_understand_the_whole_syntax() -> None:
    text = (
        "# a comment = 1\n"  # 1
        "a.b = 1  # dotted\n"  # 2
        '"quoted.key" = 2\n'  # 3
        "list = [\n"  # 4
        "  1, # one\n"  # 5
        '  { x = 1, "y" = "]" },\n'  # 6
        "]\n"  # 7
        's = """\n'  # 8
        "fake = 1\n"  # 9
        '\\""""\n'  # 10
        "lit = '''\n"  # 11
        "fake = 2'''\n"  # 12
        "[[t]]\n"  # 13
        "[[t]]\n"  # 14
        "k = 1\n"  # 15
        "  [[t.sub]]\n"  # 16
        "  j = 'x'\n"  # 17
        "[t.other]\n"  # 18
        "z = 1979-05-27 07:32:00\n"  # 19
    )
    tomllib.loads(text)  # valid TOML
    lines = key_lines(text)
    assert lines[("a", "b")] == 2 and lines[("quoted.key",)] == 3
    assert [lines[("list", i)] for i in range(2)] == [5, 6]
    assert lines[("list", 1, "y")] == 6
    assert lines[("s",)] == 8 and lines[("lit",)] == 11
    assert ("fake",) not in lines
    assert (lines[("t", 0)], lines[("t", 1)], lines[("t", 1, "k")]) == (13, 14, 15)
    assert (lines[("t", 1, "sub", 0)], lines[("t", 1, "sub", 0, "j")]) == (16, 17)
    assert (lines[("t", 1, "other")], lines[("t", 1, "other", "z")]) == (18, 19)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_key_of_the_shipped_files_has_its_line(path: Path) -> None:
    file = TomlFile.read(path, "shipped file")

    def places(value: Any, loc: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
        inner: list[tuple[str | int, ...]] = [loc] if loc else []
        if isinstance(value, dict):
            for key, item in value.items():
                inner += places(item, (*loc, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                inner += places(item, (*loc, index))
        return inner

    missing = [loc for loc in places(file.doc, ()) if loc not in file.lines]
    assert not missing
    for loc in places(file.doc, ()):
        if isinstance(loc[-1], str):  # a key: its line starts with it (or is its table's)
            text = file.text.splitlines()[file.lines[loc] - 1]
            assert str(loc[-1]) in text, (loc, text)


# -- the four kinds of file ----------------------------------------------------------------------


def test_journey_definitions_fail_with_it(tmp_path: Path) -> None:
    path = write(tmp_path, 'id = "x"\nversion = 0\n')
    with pytest.raises(ConfigFileError) as caught:
        load_definition(path)
    assert f"{path}:2: version: Input should be greater than or equal to 1" in str(caught.value)
    with pytest.raises(ConfigFileError):
        load_definitions([path])


def test_friction_mappings_fail_with_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[[rule]]\nsignal = "eror"\nevents = ["e"]\n')
    with pytest.raises(ConfigFileError) as caught:
        load_friction_mapping(path)
    assert f"{path}:2: rule[0].signal: Input should be 'error'" in str(caught.value)
    # the stages' mapping: the shipped defaults extended by a team's file
    settings = FrictionSettings(team_mapping=path)
    with pytest.raises(ConfigFileError) as caught:
        load_configured_mapping(settings)
    assert caught.value.file == path
    assert load_configured_mapping(FrictionSettings()).rule


def test_alert_routing_fails_with_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[default]\nteam = "x"\n\n[[route]]\nteam = "a"\nchanel = "web"\n')
    with pytest.raises(ConfigFileError) as caught:
        load_alert_routing(path, environ={})
    assert f"{path}:6: route[0].chanel: unknown key (misspelt?)" in str(caught.value)


@pytest.mark.parametrize("model", [ContactCenterMapping, PosMapping])
def test_column_mappings_fail_with_it(tmp_path: Path, model: type[MappingBase]) -> None:
    path = write(tmp_path, 'source = "x"\n\n[columns]\ncontact_id = 1\n')
    with pytest.raises(ConfigFileError) as caught:
        load_mapping(path, model)
    found = {(p.line, p.key) for p in caught.value.problems}
    assert all(p.file == str(path) for p in caught.value.problems)
    assert (None, "channel") in found  # not in the file at all: no line
    assert (4, "columns.contact_id") in found  # not a string, or no such column
