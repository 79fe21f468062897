"""`journeys definitions check FILE...`: validate journey definition files."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

from deploy.commands import SubParsers, examples
from schemas.definitions import DefinitionSpec, check_files
from schemas.settings import Settings

SHIPPED = Path(__file__).resolve().parents[1] / "definitions"


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    defs = sub.add_parser(
        "definitions",
        help="journey definitions (declarative TOML files)",
        epilog=examples("definitions check"),
    )
    dsub = defs.add_subparsers(title="actions", metavar="ACTION")
    text = "validate journey definition files and report every error with its location"
    check = dsub.add_parser(
        "check",
        help=text,
        description=f"{text}. Exit code 0 when every file is valid (each definition is "
        "summarized), 1 otherwise, with one line per error: FILE:LINE: PATH: reason "
        "(PATH as in stages[2].time_limit). Format reference: schemas/definitions.py.",
        epilog=examples("definitions check", "definitions check deploy/definitions/purchase.toml"),
    )
    check.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help=f"definition files (default: the shipped ones in {SHIPPED})",
    )
    check.set_defaults(func=_check)


def _check(_settings: Settings, args: argparse.Namespace) -> int:
    files = args.files or sorted(SHIPPED.glob("*.toml"))
    specs, problems = check_files(files)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        bad = len({p.file for p in problems})
        print(f"{len(problems)} error(s) in {bad} of {len(files)} file(s)", file=sys.stderr)
        return 1
    for path, spec in zip(files, specs, strict=True):
        print(f"{path}: {summary(spec)}")
    return 0


def summary(spec: DefinitionSpec) -> str:
    """One line: id, version, stages with their time limits, channels, options."""
    stages = " -> ".join(
        s.name + (f" ({_short(s.time_limit)})" if s.time_limit else "") for s in spec.ordered
    )
    channels = sorted(
        {c.value for s in spec.stages for rule in s.match for c in rule.channels}
    ) or ["any"]
    parts = [f"{spec.id} v{spec.version}: {stages}", f"channels {', '.join(channels)}"]
    failures = [s.name for s in spec.stages if s.failure]
    if failures:
        parts.append(f"failure stages {', '.join(failures)}")
    if spec.lifetime:
        parts.append(f"lifetime {_short(spec.lifetime)}")
    if spec.reopen_window:
        parts.append(f"reopen window {_short(spec.reopen_window)}")
    if spec.hold_constant:
        parts.append(f"same {spec.hold_constant} throughout")
    return "; ".join(parts)


def _short(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    # hours up to a week, as definitions usually write them ("48h", not "2d")
    for unit, size in (("d", 86400 * (seconds >= 7 * 86400)), ("h", 3600), ("m", 60)):
        if size and seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{delta.total_seconds():g}s"
