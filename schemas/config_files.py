"""Configuration files: TOML, validated by a pydantic model, every problem said with its place.

Journey definitions, the friction mapping, alert routing and the adapters' column mappings are
all read here, so a bad file fails the same way whichever it is: `ConfigFileError`, listing
every problem found as `FILE:LINE: key: reason` (the key as in `stages[2].time_limit`; the
line of that key, or else of the nearest table or entry holding it; `FILE:LINE:COLUMN` for a
TOML syntax error).

    mapping = load_config(path, FrictionMapping, what="friction mapping")

`load_config` reads and validates in one go; `TomlFile.read` and `validate` are its two
halves, for callers that need the parsed file in between (several files, one check across
them). `checks` adds problems pydantic's field types cannot find, on the raw document, so
they are reported beside the type errors.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_left
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]  # a place in the document, as pydantic reports it
Found = list[tuple[Loc, str]]  # problems a check found: where, and what is wrong
Checks = Callable[[dict[str, Any]], Found]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    """One error in a configuration file: where it is and what is wrong."""

    file: str
    key: str  # "stages[2].time_limit", or "" for the whole file
    message: str
    line: int | None = None
    column: int | None = None  # TOML syntax errors only

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigFileError(ValueError):
    """Configuration files that cannot be used. `problems` lists every error found (in line
    order within a file); `file` is the file of the first; `what` names the kind of file."""

    def __init__(self, what: str, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("ConfigFileError needs at least one problem")
        super().__init__(f"invalid {what}:\n  " + "\n  ".join(map(str, problems)))
        self.what = what
        self.problems = list(problems)
        self.file = Path(self.problems[0].file)


@dataclass(frozen=True)
class TomlFile:
    """A parsed TOML file and its text, which says where each key is (tomllib keeps no
    positions)."""

    path: Path
    text: str
    doc: dict[str, Any]

    @classmethod
    def read(cls, path: Path, what: str) -> TomlFile:
        """Read and parse `path`; `ConfigFileError` when it cannot be read or is not TOML."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            problem = Problem(str(path), "", f"cannot read the file: {exc.strerror or exc}")
            raise ConfigFileError(what, [problem]) from None
        except UnicodeDecodeError as exc:
            problem = Problem(str(path), "", f"cannot read the file: not UTF-8 ({exc})")
            raise ConfigFileError(what, [problem]) from None
        return cls.parse(text, path, what)

    @classmethod
    def parse(cls, text: str, path: Path, what: str) -> TomlFile:
        """Parse the text of `path`; `ConfigFileError` with the line (and column) of a
        syntax error."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message, line, column = _syntax_error(exc, text)
            problem = Problem(str(path), "", f"not valid TOML: {message}", line, column)
            raise ConfigFileError(what, [problem]) from None
        return cls(path, text, doc)

    @cached_property
    def lines(self) -> dict[Loc, int]:
        """Where each key, table and array element starts: place -> 1-based line."""
        return key_lines(self.text)

    def line(self, loc: Loc) -> int | None:
        """The line of `loc`, or else of the nearest key or table holding it (a missing key
        is reported at its table); None when not even the top-level key is in the file."""
        for end in range(len(loc), 0, -1):
            found = self.lines.get(loc[:end])
            if found is not None:
                return found
        return None

    def problem(self, loc: Loc, message: str) -> Problem:
        return Problem(str(self.path), dotted(loc), message, self.line(loc))


def load_config(
    path: Path,
    model: type[M],
    *,
    what: str,
    context: Any = None,
    checks: Checks | None = None,
) -> M:
    """Read a TOML file and validate it into `model`; `ConfigFileError` lists every problem
    (`what` names the kind of file in its message, e.g. "friction mapping")."""
    return validate(TomlFile.read(path, what), model, what=what, context=context, checks=checks)


def validate(
    file: TomlFile,
    model: type[M],
    *,
    what: str,
    context: Any = None,
    checks: Checks | None = None,
) -> M:
    """Validate a parsed file into `model` (with a pydantic validation `context`), running
    `checks` on the raw document too; `ConfigFileError` lists every problem of both."""
    found: Found = []
    result: M | None = None
    try:
        result = model.model_validate(file.doc, context=context)
    except ValidationError as exc:
        found += [(tuple(e["loc"]), describe(e)) for e in exc.errors(include_url=False)]
    if checks is not None:
        found += checks(file.doc)
    if found or result is None:
        problems = [file.problem(loc, message) for loc, message in found]
        raise ConfigFileError(what, sorted(problems, key=lambda p: p.line or 0))
    return result


def describe(error: ErrorDetails) -> str:
    """pydantic's message, said for someone editing the file."""
    if error["type"] == "extra_forbidden":
        return "unknown key (misspelt?)"
    if error["type"] == "missing":
        return "required"
    return error["msg"].removeprefix("Value error, ")


def dotted(loc: Loc) -> str:
    """`("stages", 2, "time_limit")` -> `stages[2].time_limit`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def _syntax_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[str, int | None, int | None]:
    """The message and the position: tomllib (3.11) only says it in the message, "(at line 3,
    column 7)" (taken out of it) or "(at end of document)" (the last line)."""
    message = str(exc)
    line: int | None = getattr(exc, "lineno", None)
    column: int | None = getattr(exc, "colno", None)
    found = _POSITION.search(message)
    if found is not None and found.group(1) is not None:  # said by FILE:LINE:COLUMN instead
        message = message[: found.start()]
        line, column = line or int(found.group(1)), column or int(found.group(2))
    elif found is not None:  # kept in the message: the end may be past the last line
        line, column = line or text.count("\n") + 1, None
    return message, line, column


# -- where keys are ------------------------------------------------------------------------------


def key_lines(text: str) -> dict[Loc, int]:
    """Where keys, tables and array elements start in a TOML document: the place, as
    pydantic reports it (`("stages", 1, "match", 0, "channels", 2)`), -> 1-based line.
    Understands the whole syntax (tables, arrays of tables, dotted and quoted keys, inline
    tables, arrays and strings over several lines); meant for text tomllib has accepted."""
    scan = _Scan(text)
    with suppress(IndexError, ValueError):  # not valid TOML after all: the places found so far
        scan.document()
    return scan.lines


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\n#]*")


class _Scan:
    """A walk over a TOML document that records where things start, and skips values."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.lines: dict[Loc, int] = {}
        self.arrays: dict[Loc, int] = {}  # array of tables -> index of its latest element

    def line(self) -> int:
        return bisect_left(self.newlines, self.i) + 1

    def mark(self, loc: Loc, line: int) -> None:
        self.lines.setdefault(loc, line)

    def peek(self) -> str:
        return self.text[self.i]  # IndexError past the end: stops the scan

    def document(self) -> None:
        table: Loc = ()
        while True:
            self.blank(newlines=True)
            if self.i >= len(self.text):
                return
            if self.peek() == "[":
                table = self.header()
            else:
                self.pair(table)

    def blank(self, *, newlines: bool) -> None:
        """Skip whitespace and comments, and line ends if `newlines`."""
        text = self.text
        while self.i < len(text):
            char = text[self.i]
            if char in " \t\r" or (newlines and char == "\n"):
                self.i += 1
            elif char == "#":
                end = text.find("\n", self.i)
                self.i = len(text) if end < 0 else end
            else:
                return

    def expect(self, token: str) -> None:
        if not self.text.startswith(token, self.i):
            raise ValueError(f"expected {token!r} at {self.i}")
        self.i += len(token)

    def header(self) -> Loc:
        """`[a.b]` or `[[a.b]]`: the table's place. A name that is an array of tables means
        its latest element, as in TOML."""
        line = self.line()
        array = self.text.startswith("[[", self.i)
        self.expect("[[" if array else "[")
        names = self.key()
        self.blank(newlines=False)
        self.expect("]]" if array else "]")
        path: Loc = ()
        for depth, name in enumerate(names):
            path = (*path, name)
            if array and depth == len(names) - 1:
                self.mark(path, line)
                index = self.arrays.get(path, -1) + 1
                self.arrays[path] = index
                path = (*path, index)
            elif path in self.arrays:
                path = (*path, self.arrays[path])
            self.mark(path, line)
        return path

    def key(self) -> list[str]:
        """A key, dotted or not: its parts."""
        parts: list[str] = []
        while True:
            self.blank(newlines=False)
            if self.peek() in "\"'":
                start = self.i
                self.string()
                parts.append(tomllib.loads(f"k = {self.text[start : self.i]}")["k"])
            else:
                bare = _BARE_KEY.match(self.text, self.i)
                if bare is None:
                    raise ValueError(f"expected a key at {self.i}")
                parts.append(bare.group())
                self.i = bare.end()
            self.blank(newlines=False)
            if self.i < len(self.text) and self.peek() == ".":
                self.i += 1
                continue
            return parts

    def pair(self, table: Loc) -> None:
        """`key = value`, in `table` (or in an inline table)."""
        line = self.line()
        path = table
        for name in self.key():
            path = (*path, name)
            self.mark(path, line)
        self.blank(newlines=False)
        self.expect("=")
        self.blank(newlines=False)
        self.value(path)

    def value(self, path: Loc) -> None:
        char = self.peek()
        if char in "\"'":
            self.string()
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:
            scalar = _SCALAR.match(self.text, self.i)
            if scalar is None or scalar.end() == self.i:
                raise ValueError(f"expected a value at {self.i}")
            self.i = scalar.end()

    def separator(self, close: str) -> None:
        """After an element of an array or inline table: `,` or the closing bracket."""
        self.blank(newlines=True)
        if self.peek() == ",":
            self.i += 1
        elif self.peek() != close:
            raise ValueError(f"expected ',' or {close!r} at {self.i}")

    def array(self, path: Loc) -> None:
        self.expect("[")
        index = 0
        while True:
            self.blank(newlines=True)
            if self.peek() == "]":
                self.i += 1
                return
            self.mark((*path, index), self.line())
            self.value((*path, index))
            self.separator("]")
            index += 1

    def inline_table(self, path: Loc) -> None:
        self.expect("{")
        while True:
            self.blank(newlines=True)
            if self.peek() == "}":
                self.i += 1
                return
            self.pair(path)
            self.separator("}")

    def string(self) -> None:
        """Skip a string of any of the four kinds."""
        text, quote = self.text, self.peek()
        if text.startswith(quote * 3, self.i):
            j = self.i + 3
            while True:
                if quote == '"' and text[j] == "\\":
                    j += 2
                elif text[j] == quote:
                    run = 1
                    while j + run < len(text) and text[j + run] == quote:
                        run += 1
                    if run >= 3:  # up to two quotes may end the content itself
                        self.i = j + min(run, 5)
                        return
                    j += run
                else:
                    j += 1
        j = self.i + 1
        while text[j] != quote:
            j += 2 if quote == '"' and text[j] == "\\" else 1
        self.i = j + 1
