"""`journeys demo` end to end, and the promise that it leaves nothing running, even when it
is interrupted."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import ROOT

PORT = 19692


def _demo(tmp_path: Path, customers: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env["JOURNEYS_DATA_DIR"] = str(tmp_path / "data")
    env["JOURNEYS_LOCAL_BROKER__JARS_DIR"] = str(ROOT / ".local" / "kafka-jars")
    env["JOURNEYS_LOCAL_BROKER__HEAP"] = "384m"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy.cli",
            "demo",
            "--customers",
            str(customers),
            "--port",
            str(PORT),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _left_running(tmp_path: Path) -> list[int]:
    """Processes whose command line or environment mention this test's data folder."""
    marker = str(tmp_path).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in blob and state != "Z":
            found.append(int(entry.name))
    return found


def test_demo_shows_what_reached_clickhouse(tmp_path: Path) -> None:
    demo = _demo(tmp_path, 1_500)
    out, _ = demo.communicate(timeout=300)
    assert demo.returncode == 0, out
    assert "Events per channel:" in out and "Dead-lettered:" in out
    rows = int(out.split("ClickHouse touchpoints:")[1].split("rows")[0].replace(",", ""))
    simulated = int(out.split("[demo] simulated")[1].split("touchpoints")[0].replace(",", ""))
    assert rows == simulated > 1_000  # repeats dropped, invalid ones dead-lettered
    assert _left_running(tmp_path) == []


def _clean_up(demo: subprocess.Popen[str], tmp_path: Path) -> None:
    """After a failure: the demo and whatever it left, killed by their own pids, so a failed
    test leaves nothing running either."""
    if demo.poll() is None:
        demo.kill()
        demo.communicate()
    for pid in _left_running(tmp_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_demo_stops_everything_it_started(tmp_path: Path, signum: int) -> None:
    # 20,000 customers: about 95,000 events, so it is still publishing when interrupted.
    demo = _demo(tmp_path, 20_000)
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if line.startswith("[demo] publishing"):
                break
        time.sleep(2.0)  # the broker, the stage and the sink are all running now
        assert _left_running(tmp_path), "expected the demo's processes to be running"
        demo.send_signal(signum)
        demo.communicate(timeout=120)
        assert demo.returncode != 0
        deadline = time.monotonic() + 30
        while _left_running(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _left_running(tmp_path) == []
    finally:
        _clean_up(demo, tmp_path)
