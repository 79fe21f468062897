"""`journeys publish FILE`: valid lines reach `raw` as micro-batches, bad lines are reported
by number with the field at fault, and the exit code says some were rejected."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from producers.synthetic import generate
from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics

from .helpers import ROOT, env_for, read_all

START = datetime(2026, 1, 5, tzinfo=UTC)


def test_publish_reports_bad_lines_and_publishes_the_rest(
    settings: Settings, tmp_path: Path
) -> None:
    items = list(generate(300, seed=4, start=START))
    valid = [i.event for i in items if i.event is not None]
    assert len(valid) == len(items)
    lines = [orjson.dumps(e) for e in valid]
    bad = {
        7: b'{"event_id": "not-a-uuid"',  # not JSON
        40: orjson.dumps({**valid[0], "channel": "fax"}),
        41: orjson.dumps({**valid[1], "identity": {}}),
        42: b"",  # blank lines are skipped, not errors
    }
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "publish", str(path)],
        env=env_for(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(f"{path}:")]
    assert [e.split(":")[1] for e in errors] == ["7", "40", "41"]
    assert "not JSON" in errors[0]
    assert "channel" in errors[1] and "identity" in errors[2]
    assert "published 300 events, rejected 3 lines" in done.stderr

    records = read_all(settings, Topics.from_settings(settings.topics).raw)
    got = [e["event_id"] for _k, v in records for e in envelope.decode(v or b"").events]
    assert sorted(got) == sorted(str(e["event_id"]) for e in valid)
    assert all(envelope.decode(v or b"").is_batch for _k, v in records)
