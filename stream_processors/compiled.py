"""The journey core compiled by mypyc: the same sources as C extensions, kept out of the tree.

`make setup` compiles the journey core (`stream_processors/core/journey*.py` and `uuids.py`;
`python -m deploy.compile_core`) into `.local/compiled/`, beside a manifest of the sources
it read. The core package then looks there first for its modules, but only while that
manifest matches the sources on disk: an edited module is never shadowed by an extension
built from its old text, it runs as plain Python until the next `make setup` (`make test`
and `make demo` run it).
`JOURNEYS_PURE_CORE=1` keeps the plain modules even when a matching build exists (to
compare both, or to debug with pdb, which cannot step into compiled code).

Why compile at all: the journey core does a few dozen dictionary and attribute operations
per event, and the interpreter's dispatch around them is most of its cost; compiled, the
same code runs about 1.5x faster (tests/bench, `make bench`). Behaviour is the same by
construction (mypyc compiles the type-checked sources) and by test (tests/unit/
test_compiled_core.py runs one traffic through both and compares every record).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / ".local" / "compiled"
MANIFEST = "manifest.json"
PURE_ENV = "JOURNEYS_PURE_CORE"
# What mypyc compiles, and what else it reads types from: a change in either makes a build
# stale (a compiled module checks the types it was compiled against at every call).
COMPILED_GLOBS = ("stream_processors/core/journey*.py", "stream_processors/core/uuids.py")
READ_GLOBS = ("schemas/*.py", "stream_processors/core/*.py")


def compiled_sources(root: Path = ROOT) -> list[Path]:
    """The modules mypyc compiles, in a stable order."""
    return sorted(p for pattern in COMPILED_GLOBS for p in root.glob(pattern))


def fingerprint(root: Path = ROOT) -> dict[str, str]:
    """What a build depends on: the interpreter and the hash of every source it read."""
    files = sorted({p for pattern in READ_GLOBS for p in root.glob(pattern)})
    sources = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    return {"python": sys.implementation.cache_tag, **sources}


def build_path(
    root: Path = ROOT, build_dir: Path = BUILD_DIR, environ: Mapping[str, str] = os.environ
) -> Path | None:
    """The directory holding a build of the current sources, or None (plain Python)."""
    if environ.get(PURE_ENV, "") not in ("", "0"):
        return None
    try:
        built = json.loads((build_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if built != fingerprint(root):
        return None
    return build_dir


def package_path(package_dir: str) -> list[str]:
    """The search path for `stream_processors.core`: the build's copy of the package first
    when it is current, then the sources (for every module not compiled)."""
    found = build_path()
    if found is None:
        return [package_dir]
    return [str(found / "stream_processors" / "core"), package_dir]


def is_compiled() -> bool:
    """Whether the journey core in this process runs compiled."""
    from stream_processors.core import journeys

    return not journeys.__file__.endswith(".py") if journeys.__file__ else False
