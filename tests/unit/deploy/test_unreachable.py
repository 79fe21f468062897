"""When Kafka or ClickHouse cannot be reached, a command says so in one line naming the
setting, and librdkafka's retries do not flood the log."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.logs import Repeats

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["topics"], "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS"),
        (["process", "ingest"], "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS"),
        (["report"], "JOURNEYS_CLICKHOUSE__DSN"),
        (["query", "funnel"], "JOURNEYS_CLICKHOUSE__DSN"),
    ],
)
def test_an_unreachable_service_is_one_line_naming_the_setting(
    args: list[str], setting: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env |= {
        "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "JOURNEYS_CLICKHOUSE__DSN": "http://127.0.0.1:2",
        "JOURNEYS_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("journeys: error: "), done.stderr
    assert setting in lines[0]


def test_a_repeated_librdkafka_message_passes_once_per_quiet_period() -> None:
    repeats = Repeats(quiet_seconds=60)

    def said(message: str, at: float) -> bool:
        record = logging.LogRecord("librdkafka", logging.ERROR, "", 0, message, None, None)
        record.created = at
        return repeats.filter(record)

    refused = (
        "[thrd:b:1/bootstrap]: b:1/bootstrap: Connect to ipv4#b:1 failed "
        "(after {}ms in state CONNECT)"
    )
    assert said(refused.format(0), 0.0)
    assert not said(refused.format(3), 0.05)
    assert not said(refused.format(1), 59.0)
    assert said("another message", 1.0)
    assert said(refused.format(0), 61.0)
