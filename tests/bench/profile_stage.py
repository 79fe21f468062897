"""Where one process of the pipeline spends its time: the end-to-end bench's feed written,
the processes before it run alone on it in turn, then the named one run alone under py-spy
(sampling only; the process runs unchanged), and its samples summed by function.

Run: `journeys broker run --instance bench --port 19392 --controller-port 19393 --fresh --
.venv/bin/python -m tests.bench.profile_stage journeys` (`make profile STAGE=journeys`).
E2E_CUSTOMERS sets the size as in `tests/bench/end_to_end.py` (60,000 by default here: about
200,000 events). The raw samples land in `.local/bench/profile-<stage>.txt` (py-spy's raw
format, one stack per line: any flame-graph tool reads it), the summary on stdout: the share
of the process's busy samples in each function, itself and with what it calls. Samples of
threads waiting (the event loop's `select`, a consumer's poll) are counted apart: py-spy
cannot tell a C call that waits from one that works, so these are named, not guessed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

from .end_to_end import ROOT, STAGES, Pipeline, cpu_seconds, feed_file, wait_until

# Leaf frames that wait rather than work.
WAITING = (
    "select (selectors.py",
    "CompactedFollower._run (stream_processors/privacy/gate.py",
    "serve_forever (socketserver.py",
    "wait (threading.py",
)
STARTUP_SECONDS = 8.0  # imports and joining the group, left out of the samples


def summarize(raw: Path, top: int = 40) -> str:
    """The busy samples' shares per function (own and inclusive), from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = waiting = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames, n = stack.split(";"), int(count)
        if frames[-1].startswith(WAITING):
            waiting += n
            continue
        busy += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not busy:
        return "no busy samples"
    lines = [f"{busy:,} busy samples, {waiting:,} waiting", "", "own time:"]
    lines += [f"{100 * n / busy:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "with what it calls:"]
    lines += [f"{100 * n / busy:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


def profile(stage: str, customers: int, rate: int = 50) -> Path:
    """Run the chain alone up to `stage`, sample `stage`; the raw samples' path."""
    feed = feed_file(customers)
    out = ROOT / ".local" / "bench" / f"profile-{stage}.txt"
    work = ROOT / ".local" / "bench" / "profile"
    work.mkdir(parents=True, exist_ok=True)
    chain = [*STAGES, "sink"]
    p = Pipeline(work, "prof")
    try:
        p.feed(feed).wait()
        del p.children["feeder"]
        for name in chain[: chain.index(stage) + 1]:
            child = p.start(name)
            started = time.monotonic()
            spy = None
            if name == stage:
                time.sleep(STARTUP_SECONDS)
                spy_bin = str(Path(sys.executable).parent / "py-spy")
                command = [spy_bin, "record", "-p", str(child.pid), "-o", str(out), "-f", "raw"]
                spy = subprocess.Popen(
                    [*command, "-r", str(rate), "--nonblocking"], stdout=subprocess.DEVNULL
                )
            wait_until(partial(p.drained, name), f"{name} alone")
            seconds = time.monotonic() - started
            print(f"{name}: {seconds:.1f} s, {cpu_seconds(child.pid):.1f} CPU s", flush=True)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            del p.children[name]
            child.terminate()
            child.wait(timeout=60)
    finally:
        p.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=[*STAGES, "sink"])
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    customers = int(os.environ.get("E2E_CUSTOMERS", "60000"))
    raw = profile(args.stage, customers)
    print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
