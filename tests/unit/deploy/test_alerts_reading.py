"""`journeys alerts list|show` read ClickHouse (chDB here): on a copy of a ClickHouse folder
with no broker reachable, in every format, with what the stage published (the teams paged,
what changed, the related series in full); an older alerts table asks for a migration."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from deploy.cli import main
from schemas.alerting import load_alert_routing
from sinks.clickhouse import insert_json_rows, migrate, session
from stream_processors.friction.alerts.core.groups import AlertGroups
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.alerts.core.routing import AlertRouter
from stream_processors.friction.alerts.core.silences import Silence
from stream_processors.friction.core.rules import Series
from tests.unit.friction.alerts.builders import CHECKOUT, closed, make_alert, tracker

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "deploy" / "alerts" / "routing.toml"
WEB_WIDE = Series("friction", "web:*", "friction")


def published() -> list[AlertRecord]:
    """Every version of one alert whose headline moves from storefront's to payments'."""
    router = AlertRouter(load_alert_routing(SHIPPED, environ={}))
    incidents, groups, out = tracker(), AlertGroups(router=router), []
    steps = [(10, [WEB_WIDE]), (11, [WEB_WIDE, CHECKOUT])] + [(i, []) for i in range(12, 17)]
    for index, series in steps:
        records = incidents.process([make_alert(index, s) for s in series], closed(index))
        for group in groups.process(records, incidents.front_ms):
            record = groups.publish(group, group.record())
            if record is not None:
                out.append(record)
    return out


def write(folder: Path) -> None:
    with session(f"chdb://{folder}") as client:
        migrate(client)
        rows = orjson.dumps([r.row() for r in published()])
        insert_json_rows(client, "alerts", rows, "test-alerts-0")
        silences = orjson.dumps([s.to_dict() for s in silences_held()])
        insert_json_rows(client, "alert_silences", silences, "test-silences-0")


def silences_held() -> list[Silence]:
    """One silence in force for a year, one that ended, and one lifted early."""
    now = datetime.now(UTC)
    year, hour = timedelta(days=365), timedelta(hours=1)
    lifted = Silence("lifted", "route", "web", now - hour, now + year, "oops")
    return [
        Silence("active", "series", "friction web:/checkout *", now, now + year, "provider"),
        Silence("ended", "route", "checkout-web", now - 2 * hour, now - hour, "deploy"),
        lifted,
        lifted.lifted(now),
    ]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[AlertRecord]]:
    """A ClickHouse folder holding the alert's versions as the sink writes them, written by a
    process that has ended (as a pipeline's folder is when it is copied)."""
    folder = tmp_path_factory.mktemp("ch") / "clickhouse"
    code = f"from {__name__} import write; from pathlib import Path; write(Path({str(folder)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
    return folder, published()


def run(
    folder: Path,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    monkeypatch.setenv("JOURNEYS_CLICKHOUSE__DSN", f"chdb://{folder}")
    monkeypatch.setenv("JOURNEYS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")  # no broker
    monkeypatch.setenv("JOURNEYS_LOG_LEVEL", "ERROR")
    code = main(["alerts", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_reads_a_copied_folder_with_no_broker(
    stored: tuple[Path, list[AlertRecord]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, records = stored
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, symlinks=True)  # as `cp -r` does: ClickHouse links inside
    code, out, err = run(copy, ["list", "--format", "json"], monkeypatch, capsys)
    assert code == 0, err
    (row,) = orjson.loads(out)
    last = records[-1]
    assert row["alert_id"] == last.incident_id and row["version"] == last.version
    assert row["status"] == "resolved" and row["team"] == "payments"
    assert row["series"] == str(CHECKOUT) and row["related"] == [str(WEB_WIDE)]
    assert row["teams"] == ["payments", "storefront"]
    code, out, _ = run(copy, ["list", "--format", "csv"], monkeypatch, capsys)
    assert code == 0 and out.splitlines()[0].startswith("alert_id,status,started_at")
    assert last.incident_id in out.splitlines()[1]
    code, out, _ = run(copy, ["list", "--status", "firing"], monkeypatch, capsys)
    assert code == 0 and "(no alerts)" in out


def test_show_reads_the_record_back_whole(
    stored: tuple[Path, list[AlertRecord]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, records = stored
    last = records[-1]
    code, out, _ = run(
        folder, ["show", last.incident_id[:8], "--format", "json"], monkeypatch, capsys
    )
    assert code == 0
    assert AlertRecord.from_dict(orjson.loads(out)) == last  # related, examples, paging
    code, out, _ = run(folder, ["show", last.incident_id[:8]], monkeypatch, capsys)
    assert code == 0
    assert "teams       payments, storefront; paged before storefront, payments" in out
    assert f"{WEB_WIDE}" in out and "(storefront)" not in out.splitlines()[0]


def test_an_older_alerts_table_asks_for_a_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "old"
    with session(f"chdb://{folder}") as client:
        migrate(client)
        client.command("ALTER TABLE alerts DROP COLUMN teams")
    code, _, err = run(folder, ["list"], monkeypatch, capsys)
    assert code == 2
    assert err.strip() == (
        "journeys: error: the alerts table lacks teams (an older schema): run `journeys db migrate`"
    )


def test_silences_lists_those_in_force(
    stored: tuple[Path, list[AlertRecord]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _ = stored
    code, out, _ = run(folder, ["silences", "--format", "json"], monkeypatch, capsys)
    assert code == 0
    assert [(s["silence_id"], s["reason"]) for s in orjson.loads(out)] == [("active", "provider")]
    code, out, _ = run(folder, ["silences", "--all", "--format", "csv"], monkeypatch, capsys)
    assert code == 0
    assert sorted(line.split(",")[0] for line in out.splitlines()[1:]) == [
        "active",
        "ended",
        "lifted",
    ]
