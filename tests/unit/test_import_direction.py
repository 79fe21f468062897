"""Which package may import which (the dependency direction), checked on the AST.

Every import form counts (`import a.b`, `from a import b`, relative imports, imports under
`if TYPE_CHECKING:`, `importlib.import_module("a")` / `__import__("a")` with a literal name).
`deploy/` is the composition root and may import everything.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("schemas", "producers", "stream_processors", "sinks", "deploy")
PROJECT = (*PRODUCT, "tests")

# Reading these is reading the wall clock: a `core/` module is given its time.
CLOCK = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.perf_counter",
        "time.perf_counter_ns",
    }
)


@dataclass(frozen=True)
class Rule:
    name: str
    applies: Callable[[PurePosixPath], bool]
    forbidden: frozenset[str]  # top-level packages the files may not import
    clock: bool = False  # whether reading the wall clock is forbidden too

    def __str__(self) -> str:
        return self.name


def _under(*packages: str) -> Callable[[PurePosixPath], bool]:
    return lambda path: path.parts[0] in packages


def _in_core(path: PurePosixPath) -> bool:
    return path.parts[0] == "stream_processors" and "core" in path.parts[1:-1]


CORE = Rule(
    "core/ imports no I/O framework and reads no clock",
    _in_core,
    frozenset(
        {
            "faust",
            "mode",
            "confluent_kafka",
            "aiokafka",
            "clickhouse_connect",
            "chdb",
            "sqlalchemy",
            "prometheus_client",
        }
    ),
    clock=True,
)
RULES = [
    CORE,
    Rule(
        "schemas/ imports no other project package",
        _under("schemas"),
        frozenset(PROJECT) - {"schemas"},
    ),
    Rule(
        "sinks/ does not import stream_processors/",
        _under("sinks"),
        frozenset({"stream_processors"}),
    ),
    Rule(
        "stream_processors/ does not import sinks/",
        _under("stream_processors"),
        frozenset({"sinks"}),
    ),
    Rule(
        "producers/ imports only schemas/ and itself of the project",
        _under("producers"),
        frozenset(PROJECT) - {"schemas", "producers"},
    ),
    Rule("product code does not import tests/", _under(*PRODUCT), frozenset({"tests"})),
]


def _module_name(path: PurePosixPath) -> str:
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: PurePosixPath, tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import in the file."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
        elif (
            isinstance(node, ast.Call)
            and _dotted(node.func) in {"importlib.import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = _dotted(node.value)
        return None if owner is None else f"{owner}.{node.attr}"
    return None


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the qualified name it was imported as."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                aliases[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _clock_reads(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, qualified name) for every import or use of a wall-clock function."""
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in CLOCK:
                    yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Name | ast.Attribute) and not isinstance(node.ctx, ast.Store):
            head, _, rest = (_dotted(node) or "").partition(".")
            qualified = ".".join(filter(None, [aliases.get(head, ""), rest]))
            if head in aliases and qualified in CLOCK:
                yield node.lineno, qualified


def violations(rule: Rule, path: PurePosixPath, source: str) -> list[str]:
    tree = ast.parse(source, filename=str(path))
    found = [
        f"{path}:{line}: imports {module} ({rule})"
        for line, module in _imports(path, tree)
        if module.split(".")[0] in rule.forbidden
    ]
    if rule.clock:
        found += [
            f"{path}:{line}: reads the wall clock: {name} ({rule})"
            for line, name in _clock_reads(tree)
        ]
    return sorted(set(found))


def _sources() -> list[PurePosixPath]:
    return sorted(
        PurePosixPath(path.relative_to(ROOT).as_posix())
        for package in PROJECT
        for path in (ROOT / package).rglob("*.py")
    )


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_import_direction(rule: Rule) -> None:
    files = [path for path in _sources() if rule.applies(path)]
    assert files, f"{rule}: the rule matches no file (were packages moved?)"
    found = [v for path in files for v in violations(rule, path, (ROOT / path).read_text())]
    assert not found, "forbidden imports:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import faust\n", "stream_processors/ingest/core/fake.py:1: imports faust"),
        ("x = 1\nfrom mode.utils import y\n", ":2: imports mode.utils"),
        ("def f():\n    import confluent_kafka.admin\n", ":2: imports confluent_kafka.admin"),
        ("import time\nt = time.monotonic()\n", ":2: reads the wall clock: time.monotonic"),
        ("from time import perf_counter as pc\n", ":1: reads the wall clock: time.perf_counter"),
        (
            "import datetime as dt\nx = dt.date.today()\n",
            ":2: reads the wall clock: datetime.date.today",
        ),
        (
            "from datetime import UTC, datetime\n\nnow = datetime.now(UTC)\n",
            ":3: reads the wall clock",
        ),
        ("import time\n\ndef f(clock=time.time): ...\n", ":3: reads the wall clock: time.time"),
    ],
)
def test_checker_reports_a_core_violation(source: str, expected: str) -> None:
    path = PurePosixPath("stream_processors/ingest/core/fake.py")
    assert CORE.applies(path)
    found = violations(CORE, path, source)
    assert any(expected in v for v in found), found


def test_checker_resolves_relative_imports() -> None:
    path = PurePosixPath("schemas/fake.py")
    [rule] = [r for r in RULES if r.name.startswith("schemas/")]
    assert violations(rule, path, "from ..deploy import cli\n") == [
        "schemas/fake.py:1: imports deploy (schemas/ imports no other project package)"
    ]
    assert violations(rule, path, "from . import touchpoint\nfrom .envelope import x\n") == []


def test_checker_leaves_other_names_alone() -> None:
    path = PurePosixPath("stream_processors/ingest/core/fake.py")
    source = (
        "import faustian\n"
        "from datetime import datetime\n"
        "event.time.time()\n"
        "t = datetime.fromisoformat(s)\n"
    )
    assert violations(CORE, path, source) == []
