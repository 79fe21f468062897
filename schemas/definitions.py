"""Journey definitions (docs/concepts.md §4): declarative TOML files, validated on load.

A definition names ordered stages; each stage is matched by rules on channel, event type,
touchpoint and properties (any channel unless the rule names some). Every stage before the
success stage has a time limit to reach a later stage; the success stage ends the journey as
`converted`; failure stages (off the ordered path) end it as `dropped_off` at once. Optional:
an overall lifetime (`expired` when it passes), a reopen window (a customer who comes back
with progress that soon after a drop-off reopens the journey), the stages a journey may start
at (default: the first), a `hold_constant` property that must stay the same through the
stages (an order or case id): each value is a journey of its own, and `includes`: events that
belong to the journey without matching a stage. A journey's counts and channels come only from
its own events: those a stage matches, and those an include rule matches.

    id = "support"
    version = 1
    reopen_window = "2h"

    [[stages]]
    name = "issue"
    time_limit = "48h"
      [[stages.match]]
      channels = ["web", "app"]
      event_types = ["help_view"]

    [[includes]]
    channels = ["call_center"]
    event_types = ["contact_answered", "contact_ended"]

`check_files` returns every problem of every file with its location (file, line when it can
be found, and a path such as `stages[2].time_limit`); `load_definitions` raises
`schemas.config_files.ConfigFileError` carrying the same problems.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator

from schemas.config_files import (
    ConfigFileError,
    Found,
    Problem,
    TomlFile,
    load_config,
    validate,
)
from schemas.touchpoint import Channel, Name

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """`"24h"`, `"90m"`, `"1h30m"`, `"2d"`, `"500ms"` or a number of seconds; positive."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        parts = _DURATION.findall(text)
        if "".join(n + u for n, u in parts) != text:
            raise ValueError(
                f"{value!r} is not a duration: use a number of seconds or a string such as "
                "'30m', '24h', '1h30m', '2d'"
            )
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ValueError(f"{value!r} is not a duration: use seconds or a string such as '24h'")
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be positive")
    return timedelta(seconds=seconds)


_IDENTIFIER = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def _identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{value!r}: use lower-case letters, digits, '_' or '-', starting with a letter "
            "(at most 64)"
        )
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Identifier = Annotated[str, AfterValidator(_identifier)]
PropertyScalar = str | bool | int | float


def _property_rule(value: object) -> PropertyScalar | list[PropertyScalar]:
    """One clear message instead of one per member of the union."""
    scalars = value if isinstance(value, list) else [value]
    if not scalars or not all(isinstance(v, str | bool | int | float) for v in scalars):
        raise ValueError(
            f"{value!r}: a property rule is a value (string, number, boolean) or a non-empty "
            "list of values"
        )
    return value  # type: ignore[return-value]  # checked just above


PropertyRule = Annotated[PropertyScalar | list[PropertyScalar], PlainValidator(_property_rule)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchRule(_Strict):
    """One way an event can match a stage; every condition given must hold. Empty lists mean
    any. A property rule is a value (equality) or a list of values (any of them)."""

    channels: list[Channel] = []
    event_types: list[Name] = []
    touchpoints: list[Name] = []
    properties: dict[Name, PropertyRule] = {}


class IncludeRule(_Strict):
    """Events that belong to a journey without matching a stage (a call's answer, a page
    between stages): an event counts on a journey if a stage matches it or an include rule
    does. Every condition given must hold; empty lists mean any (one must be given)."""

    channels: list[Channel] = []
    event_types: list[Name] = []


class StageSpec(_Strict):
    """A stage: how events match it, how long a journey may wait there, how it ends one."""

    name: Identifier
    match: Annotated[list[MatchRule], Field(min_length=1)]
    time_limit: Duration | None = None
    success: bool = False
    failure: bool = False


class DefinitionSpec(_Strict):
    """A whole journey definition, as the file says it (see the module docstring)."""

    id: Identifier
    version: Annotated[int, Field(ge=1)]
    description: str = ""
    stages: Annotated[list[StageSpec], Field(min_length=2)]
    entry_stages: list[Identifier] = []
    lifetime: Duration | None = None
    reopen_window: Duration | None = None
    hold_constant: Name | None = None
    includes: list[IncludeRule] = []

    @property
    def ordered(self) -> list[StageSpec]:
        """The stages of the ordered path (failure stages are off it)."""
        return [s for s in self.stages if not s.failure]

    @property
    def entries(self) -> list[str]:
        """The stages a journey may start at."""
        return self.entry_stages or [self.ordered[0].name]


WHAT = "journey definitions"


def check_file(path: Path) -> tuple[DefinitionSpec | None, list[Problem]]:
    """Read and validate one file: the definition if it is valid, and every problem found."""
    try:
        return load_definition(path), []
    except ConfigFileError as exc:
        return None, exc.problems


def check_files(paths: Iterable[Path]) -> tuple[list[DefinitionSpec], list[Problem]]:
    """Validate several files, and that no two define the same id."""
    specs: list[DefinitionSpec] = []
    problems: list[Problem] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            file = TomlFile.read(path, WHAT)
            spec = validate(file, DefinitionSpec, what=WHAT, checks=semantic_problems)
        except ConfigFileError as exc:
            problems += exc.problems
            continue
        if spec.id in seen:
            problems.append(
                file.problem(("id",), f"{spec.id!r} is also defined in {seen[spec.id]}")
            )
            continue
        seen[spec.id] = path
        specs.append(spec)
    return specs, problems


def load_definition(path: Path) -> DefinitionSpec:
    """One valid definition, or `ConfigFileError` with every problem of the file."""
    return load_config(path, DefinitionSpec, what=WHAT, checks=semantic_problems)


def load_definitions(paths: Iterable[Path]) -> list[DefinitionSpec]:
    """Valid definitions with distinct ids, or `ConfigFileError` with every problem."""
    specs, problems = check_files(paths)
    if problems:
        raise ConfigFileError(WHAT, problems)
    return specs


# -- rules pydantic's field types cannot say --------------------------------------------------


def semantic_problems(doc: dict[str, Any]) -> Found:
    """Cross-field rules, checked on the raw document so they are reported beside type errors:
    distinct stage names, one success stage ending the ordered path, time limits exactly where
    a journey waits, entry stages that exist, rules narrow enough to mean something."""
    stages = doc.get("stages")
    if not isinstance(stages, list):
        return []
    rows = [s if isinstance(s, dict) else {} for s in stages]
    out: Found = []
    out += _names(rows)
    out += _success_and_limits(rows)
    out += _entries(doc.get("entry_stages"), rows)
    for k, rule in enumerate(doc.get("includes") or []):
        if isinstance(rule, dict) and not (rule.get("channels") or rule.get("event_types")):
            message = "an include rule needs channels or event_types (as written: every event)"
            out.append((("includes", k), message))
    for i, row in enumerate(rows):
        for j, rule in enumerate(row.get("match") or []):
            if isinstance(rule, dict) and not (
                rule.get("event_types") or rule.get("touchpoints") or rule.get("properties")
            ):
                out.append(
                    (
                        ("stages", i, "match", j),
                        "a rule needs event_types, touchpoints or properties "
                        "(as written it matches every event)",
                    )
                )
    return out


def _names(rows: list[dict[str, Any]]) -> Found:
    out: Found = []
    first: dict[Any, int] = {}
    for i, row in enumerate(rows):
        name = row.get("name")
        if isinstance(name, str) and name in first:
            message = f"{name!r} is also the name of stages[{first[name]}]"
            out.append((("stages", i, "name"), message))
        elif isinstance(name, str):
            first[name] = i
    return out


def _success_and_limits(rows: list[dict[str, Any]]) -> Found:
    out: Found = []
    ordered = [i for i, row in enumerate(rows) if row.get("failure") is not True]
    successes = [i for i, row in enumerate(rows) if row.get("success") is True]
    for i in successes:
        if rows[i].get("failure") is True:
            out.append((("stages", i, "failure"), "a stage cannot be both success and failure"))
    if not successes:
        out.append((("stages",), "no stage has success = true (the last ordered stage should)"))
    elif ordered and successes[-1] != ordered[-1]:
        out.append(
            (
                ("stages", successes[-1], "success"),
                "the success stage must be the last stage of the ordered path "
                "(only failure stages may follow it)",
            )
        )
    for i in successes[:-1]:
        out.append((("stages", i, "success"), "only one stage can have success = true"))
    final = ordered[-1] if ordered else None
    for i, row in enumerate(rows):
        has_limit = row.get("time_limit") is not None
        waits = i in ordered and i != final
        if waits and not has_limit:
            out.append(
                (
                    ("stages", i, "time_limit"),
                    "required on a stage before the success stage: how long a journey may "
                    "stay here before it counts as dropped off (e.g. '24h')",
                )
            )
        elif has_limit and not waits:
            kind = "failure" if i not in ordered else "final"
            message = f"a {kind} stage ends the journey: no time limit"
            out.append((("stages", i, "time_limit"), message))
    if len(ordered) < 2:
        out.append((("stages",), "the ordered path needs at least two stages"))
    return out


def _entries(entries: Any, rows: list[dict[str, Any]]) -> Found:
    if not isinstance(entries, list):
        return []
    ordered = {row.get("name") for row in rows if row.get("failure") is not True}
    return [
        (("entry_stages", k), f"{name!r} is not a stage of the ordered path")
        for k, name in enumerate(entries)
        if isinstance(name, str) and name not in ordered
    ]
