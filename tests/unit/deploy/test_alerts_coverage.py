"""`journeys alerts coverage`: every tested series with its volume and how
soon a change would alert, the figures checked against expectations summed by brute force
over the Poisson and binomial pmfs; and the command on a chDB folder with no broker."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from deploy.cli import main
from deploy.commands.alerts_coverage import coverage_answer
from schemas.settings import DetectorSettings
from sinks.clickhouse import insert_json_rows, migrate, session

ROOT = Path(__file__).resolve().parents[3]
WINDOW = timedelta(minutes=5)
T0 = 1_740_960_000.0


def poisson_expected_llr(mean: float, true_mean: float) -> float:
    """E[log P(k | 2 mean) / P(k | mean)] for k ~ Poisson(true_mean), summed term by term."""
    total, k = 0.0, 0
    pmf = math.exp(-true_mean)
    while k < 400:
        llr = k * math.log(2.0) - mean
        total += pmf * llr
        k += 1
        pmf *= true_mean / k
    return total


def binomial_expected_llr(n: int, p0: float, p_true: float, p1: float) -> float:
    return sum(
        math.comb(n, k)
        * p_true**k
        * (1 - p_true) ** (n - k)
        * (k * math.log(p1 / p0) + (n - k) * math.log((1 - p1) / (1 - p0)))
        for k in range(n + 1)
    )


def rows_by_series(windows: list[tuple[str, str, dict[str, int]]]) -> dict[str, dict[str, object]]:
    answer = coverage_answer(windows, DetectorSettings(), WINDOW)
    return {row[0]: dict(zip(answer.columns, row, strict=True)) for row in answer.rows}


def test_a_quiet_touchpoint_is_covered_with_its_time_to_detect_a_doubling() -> None:
    """10 exposures a window at 5% errors: too quiet for one window, tested over ~30."""
    windows = [("friction", "web:/product/:id", {"exposures": 10, "error": 1})] * 20
    windows += [("friction", "web:/product/:id", {"exposures": 10})] * 20
    row = rows_by_series(windows)["friction web:/product/:id error"]
    d = DetectorSettings()
    mean = 0.05 * 10
    expected = d.cusum_h / poisson_expected_llr(mean, 2 * mean)
    assert row["per_window_test"] == "no" and row["tested_for"] == "doubling"
    assert row["volume_per_window"] == 10 and row["rate"] == pytest.approx(0.05)
    assert row["windows_to_detect"] == pytest.approx(expected, abs=0.06)
    assert row["minutes_to_detect"] == round(expected * 5)


def test_a_drop_off_share_and_a_source_are_covered() -> None:
    windows = [("stage", "purchase:checkout:web", {"entered": 20, "progressed": 14, "dropped": 6})]
    windows += [("volume", "web:web-shop", {"events": 40})]
    rows = rows_by_series(windows * 12)
    dropoff = rows["dropoff purchase:checkout:web dropoff"]
    d = DetectorSettings()
    p0 = 0.3
    odds = p0 / (1 - p0) * d.cusum_odds
    kl = binomial_expected_llr(20, p0, 0.6, odds / (1 + odds))
    assert dropoff["windows_to_detect"] == pytest.approx(d.cusum_h / kl, abs=0.06)
    volume = rows["volume web:web-shop events"]
    # A fall to the collapse ratio: E[LLR] = mean * r * log r - (r - 1) * mean at r = 0.2.
    r = d.collapse_ratio
    kl_fall = 40 * r * math.log(r) - (r - 1) * 40
    assert volume["tested_for"] == "fall to 20%" and volume["per_window_test"] == "yes"
    assert volume["windows_to_detect"] == pytest.approx(max(1.0, d.cusum_h / kl_fall), abs=0.06)
    assert rows["entries purchase:checkout:web entered"]["volume_per_window"] == 20


def write(folder: Path) -> None:
    rows = [
        {
            "series_kind": "friction",
            "scope": "web:/checkout",
            "window_start": T0 + i * 300,
            "window_end": T0 + (i + 1) * 300,
            "version": 1,
            "counts": {"exposures": 30, "error": 1},
            "backfill": False,
        }
        for i in range(24)
    ]
    with session(f"chdb://{folder}") as client:
        migrate(client)
        insert_json_rows(client, "friction_windows", orjson.dumps(rows), "test-coverage-0")


def test_the_command_reads_clickhouse_with_no_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "clickhouse"
    code = f"from {__name__} import write; from pathlib import Path; write(Path({str(folder)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
    monkeypatch.setenv("JOURNEYS_CLICKHOUSE__DSN", f"chdb://{folder}")
    monkeypatch.setenv("JOURNEYS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")  # no broker
    monkeypatch.setenv("JOURNEYS_LOG_LEVEL", "ERROR")
    assert main(["alerts", "coverage", "--hours", "1", "--format", "json"]) == 0
    rows = {r["series"]: r for r in orjson.loads(capsys.readouterr().out)}
    error = rows["friction web:/checkout error"]
    assert error["windows"] == 12  # the last hour of event time only
    assert error["volume_per_window"] == 30 and error["minutes_to_detect"] > 0
    assert main(["alerts", "coverage"]) == 0
    assert "friction web:/checkout error" in capsys.readouterr().out
