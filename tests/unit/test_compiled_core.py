"""The compiled journey core: used only while its build matches the sources, and giving the
same records and state as the plain modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream_processors import compiled
from stream_processors.compiled import MANIFEST, PURE_ENV, build_path, fingerprint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A source tree with a build of it (only the manifest: the loader reads nothing else)."""
    root, build = tmp_path / "src", tmp_path / "build"
    (root / "schemas").mkdir(parents=True)
    (root / "stream_processors" / "core").mkdir(parents=True)
    (root / "schemas" / "touchpoint.py").write_text("X = 1\n")
    (root / "stream_processors" / "core" / "journeys.py").write_text("Y = 2\n")
    build.mkdir()
    (build / MANIFEST).write_text(json.dumps(fingerprint(root)))
    return root, build


def test_a_build_of_the_current_sources_is_used(tree: tuple[Path, Path]) -> None:
    root, build = tree
    assert build_path(root, build, environ={}) == build


def test_an_edited_source_makes_the_build_stale(tree: tuple[Path, Path]) -> None:
    root, build = tree
    (root / "stream_processors" / "core" / "journeys.py").write_text("Y = 3\n")
    assert build_path(root, build, environ={}) is None


def test_a_source_the_compiler_only_read_makes_it_stale_too(tree: tuple[Path, Path]) -> None:
    root, build = tree
    (root / "schemas" / "touchpoint.py").write_text("X = 2\n")
    assert build_path(root, build, environ={}) is None


def test_a_new_module_in_the_core_makes_it_stale(tree: tuple[Path, Path]) -> None:
    root, build = tree
    (root / "stream_processors" / "core" / "journey_new.py").write_text("")
    assert build_path(root, build, environ={}) is None


def test_another_interpreter_does_not_use_it(tree: tuple[Path, Path]) -> None:
    root, build = tree
    made = json.loads((build / MANIFEST).read_text())
    (build / MANIFEST).write_text(json.dumps({**made, "python": "cpython-399"}))
    assert build_path(root, build, environ={}) is None


def test_no_manifest_or_a_broken_one_means_plain_modules(tree: tuple[Path, Path]) -> None:
    root, build = tree
    (build / MANIFEST).write_text("{")
    assert build_path(root, build, environ={}) is None
    (build / MANIFEST).unlink()
    assert build_path(root, build, environ={}) is None


def test_the_environment_can_keep_the_plain_modules(tree: tuple[Path, Path]) -> None:
    root, build = tree
    assert build_path(root, build, environ={PURE_ENV: "1"}) is None
    assert build_path(root, build, environ={PURE_ENV: "0"}) == build


def _trace(seed: int, *, pure: bool) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.compiled_trace", str(seed)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()


@pytest.mark.parametrize("seed", [3, 4])
def test_compiled_and_plain_cores_give_the_same_records_and_state(seed: int) -> None:
    # Never skipped: `make setup` builds it before every suite, so a missing or stale build
    # here means the build or its manifest broke.
    assert compiled.build_path(environ={}) is not None, "no current build: run `make setup`"
    fast, plain = _trace(seed, pure=False), _trace(seed, pure=True)
    assert (fast[-1], plain[-1]) == ("compiled=True", "compiled=False")
    assert len(fast) > 1000 and any('"Retraction"' in line for line in fast)
    for n, (a, b) in enumerate(zip(fast[:-1], plain[:-1], strict=True)):
        assert a == b, f"line {n} differs"
