"""`python -m deploy.compile_core`: compile the journey core with mypyc into .local/compiled.

Run by `make setup` when a source changed. The build goes to a temporary folder first and
replaces the old one only when complete, with the manifest written last, so an interrupted
or failed build leaves the plain modules in use (`stream_processors.compiled`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from stream_processors.compiled import (
    BUILD_DIR,
    MANIFEST,
    ROOT,
    build_path,
    compiled_sources,
    fingerprint,
)

# One shared library for all compiled modules, named inside the package so that it is found
# on the package's search path like the modules themselves (mypyc's default name is a
# top-level module, which would need the build folder on sys.path).
GROUP = "stream_processors.core.journey_core"


def build(build_dir: Path = BUILD_DIR) -> Path:
    """Compile into `build_dir` (replacing what is there); return it."""
    from mypyc.build import mypycify
    from setuptools import setup

    sources = [str(p.relative_to(ROOT)) for p in compiled_sources()]
    made_of = fingerprint()  # taken before compiling: what the build is made of
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="compiled-", dir=build_dir.parent))
    log = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)  # mypyc resolves module names from the paths it is given
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            extensions = mypycify(sources, group_name=GROUP, target_dir=str(staging / "c"))
            setup(
                name="journeys-core-compiled",
                ext_modules=extensions,
                script_args=[
                    "build_ext", "--build-lib", str(staging / "lib"),
                    "--build-temp", str(staging / "obj"),
                ],
            )  # fmt: skip
    except (Exception, SystemExit) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BuildError(f"{exc}\n{log.getvalue()[-4000:]}") from exc
    finally:
        os.chdir(cwd)
    lib = staging / "lib"
    (lib / MANIFEST).write_text(json.dumps(made_of, indent=1, sort_keys=True))
    shutil.rmtree(build_dir, ignore_errors=True)
    lib.rename(build_dir)
    shutil.rmtree(staging, ignore_errors=True)
    return build_dir


class BuildError(RuntimeError):
    """mypyc or the C compiler failed; the message ends with their output."""


def main() -> int:
    if build_path(environ={}) is not None:
        print("journey core: compiled build is current")
        return 0
    count = len(compiled_sources())
    print(f"journey core: compiling {count} modules with mypyc (about 40 s) ...", flush=True)
    started = time.monotonic()
    try:
        where = build()
    except BuildError as exc:
        print(f"journey core: compiling failed; the plain modules stay in use.\n{exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    took = time.monotonic() - started
    print(f"journey core: compiled into {where.relative_to(ROOT)} in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
