"""Instructions per event in the journey core, counted by valgrind (callgrind): a figure that
machine noise does not move, to compare two versions of the core on a shared machine, where
the timed bench of the same code moves by a fifth between runs.

`make bench-instructions` runs it. The core is warmed as `journeys.bench_journey_core` warms it,
with fewer customers (valgrind runs everything some 50 times slower) and valgrind's
instrumentation off; then the timed traffic runs with it on, and only what runs inside the
core's entry points counts (`observe_batch`, `advance_watermark`, `take_dirty`, by
`--toggle-collect` on their compiled wrappers): not decoding, not this harness. So it needs
the compiled core (`make setup` builds it) and valgrind.

Instructions are not time: a memory stall costs none, and the core waits on memory often (a
million customers' state does not fit in any cache). Read it beside the timed bench.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from schemas import envelope
from stream_processors.compiled import is_compiled
from stream_processors.worker import GC_THRESHOLDS

from . import journeys
from .report import Result, render, save

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ("observe_batch", "advance_watermark", "take_dirty")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.instructions",
        description="Count the journey core's instructions per event under callgrind.",
    )
    parser.add_argument("--persons", type=int, default=100_000, help="customers warmed up")
    parser.add_argument("--events", type=int, default=40_000, help="events counted")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--go", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.persons, args.events, args.go)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench-instructions needs valgrind (callgrind); it is not installed here")
        return 2
    if not is_compiled():
        print("bench-instructions counts the compiled core: run `make setup` to build it")
        return 2
    result = count(args.persons, args.events)
    print(render([result]))
    save([result], ROOT / ".local" / "bench" / "instructions.json")
    return 0


def count(persons: int, events: int) -> Result:
    """Run the child under callgrind; instructions per event in the core."""
    with tempfile.TemporaryDirectory(prefix="journeys-instr-") as tmp:
        out, go = Path(tmp) / "callgrind.out", Path(tmp) / "go"
        toggles = [
            f"--toggle-collect=CPyPy_journeys___JourneyCore___{name}" for name in ENTRY_POINTS
        ]
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
            *toggles, f"--callgrind-out-file={out}",
            sys.executable, "-m", "tests.bench.instructions", "--child",
            "--persons", str(persons), "--events", str(events), "--go", str(go),
        ]  # fmt: skip
        print(f"warming {persons:,} customers under valgrind (a few minutes) ...", flush=True)
        child = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("READY"):
                subprocess.run(
                    ["callgrind_control", "--instr=on", str(child.pid)],
                    check=True, capture_output=True,
                )  # fmt: skip
                go.touch()
                print(f"counting {events:,} events ...", flush=True)
            elif line.startswith("DONE"):
                print(line.strip(), flush=True)
        if child.wait() != 0:
            raise RuntimeError(f"the counted run failed (exit {child.returncode})")
        total = _total(out)
    return Result(
        f"journey core (compiled) under callgrind: {events:,} events, {persons:,} customers",
        total / events, "instr/ev", None, "fewer is better; compare runs of the same size",
    )  # fmt: skip


def _total(out: Path) -> int:
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {out}")


def _child(persons: int, events: int, go: Path | None) -> int:
    gc.set_threshold(*GC_THRESHOLDS)
    core = journeys._core()
    journeys._feed(core, journeys.warmup(persons))
    gc.collect()
    gc.freeze()
    frags = [orjson.dumps(e) for e in journeys.timed(events, persons)]
    messages = [envelope.encode(frags[i : i + 500], None) for i in range(0, events, 500)]
    print("READY", flush=True)
    while go is not None and not go.exists():
        time.sleep(0.2)
    outputs, counted, _ = journeys._feed(core, (envelope.decode(m).events for m in messages))
    print(f"DONE {counted:,} events, {outputs:,} records", flush=True)
    os._exit(0)  # not the teardown of the core: it would only slow valgrind down


if __name__ == "__main__":
    raise SystemExit(main())
