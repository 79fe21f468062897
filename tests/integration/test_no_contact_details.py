"""No raw e-mail address or phone number reaches Kafka or ClickHouse: contact details go into
the collector (traits, properties, free text, an invalid call), the adapters' example files
(plus records with contact details in their free text) and `journeys publish`, the ingest and
identity stages and the sink run, then every topic of the deployment is scanned,
decompressed, and every table read, for any e-mail address or phone number at all, not only
for the ones this test sent, and for those it sent in national formats and Unicode."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import orjson

from deploy.kafka_admin import admin_client
from producers.adapters.runner import run_ingest
from producers.files import publish_file
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import session

from .helpers import (
    ROOT,
    basic_auth,
    drain,
    free_port,
    journeys,
    post,
    read_all,
    stage_topics,
    start_collector,
    stop,
    terminate,
)
from .test_collector import SOURCES, WEB_KEY

EXAMPLES = ROOT / "deploy" / "examples"
MAPPINGS = ROOT / "deploy" / "mappings"
ANY_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+\.[A-Za-z]{2,}")
ANY_PHONE = re.compile(
    rb"\+\d{1,3}[ \d().-]{7,16}\d"  # international
    rb"|(?<![\w:-])0\d{2,4}[ .-]?\d{3,4}[ .-]?\d{3,4}(?![\w-])"  # national, with a trunk 0
    rb"|\(\d{3}\) ?\d{3}-\d{4}|(?<![\w-])\d{3}-\d{3}-\d{4}(?![\w-])"  # North American
)
EMAILS = ["Jane.Doe@Example.com", "ops+alerts@shop.example.co.uk"]
PHONES = ["+44 20 7946 0958", "(555) 010-4477", "020 7946 0123"]
# Free text in the formats people write: national US and UK, 00-international, toll-free, and
# a Unicode address.
FREE = ["555 123 4567", "0044 20 7946 0958", "07700 900123", "1-800-555-0199", "jané@exämple.com"]
NOTE = f"call {FREE[0]} or {FREE[1]}; mobile {FREE[2]}, free {FREE[3]}, mail {FREE[4]}"


def _contact_values() -> list[bytes]:
    values = [v.encode() for v in EMAILS + PHONES + FREE]
    values.append(json.dumps(FREE[4])[1:-1].encode())  # as JSON with \u escapes
    values.append(FREE[4].encode("ascii", "backslashreplace"))  # as \xe9 in Python reprs
    values.append(FREE[4].encode("unicode_escape"))
    with open(EXAMPLES / "contacts.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            for column in ("ANI", "Email"):
                value = row[column].encode()
                if b"@" in value or len(_digits(value)) >= 7:  # not 'anonymous' or ''
                    values.append(value)
    return values


def _digits(value: bytes) -> bytes:
    return re.sub(rb"\D", b"", value)


def _send_to_collector(port: int) -> None:
    auth = {"Content-Type": "application/json", "Authorization": basic_auth(WEB_KEY)}
    batch = {
        "batch": [
            {
                "type": "identify",
                "userId": "u-77",
                "anonymousId": "a-77",
                "traits": {"email": EMAILS[0], "phone": PHONES[0], "mobile": PHONES[2]},
            },
            {
                "type": "track",
                "userId": "u-77",
                "event": "Callback Requested",
                "properties": {
                    "contact": EMAILS[1],
                    "note": f"ring me on {PHONES[1]}",
                    "free": NOTE,
                    FREE[4]: True,
                    "nested": {"backup_phone": PHONES[2]},
                },
            },
            {
                "type": "page",
                "userId": "u-77",
                "name": f"Callback {FREE[2]}",
                "context": {"page": {"path": "/help", "title": NOTE}},
            },
            {"type": "track", "event": "", "properties": {"email": EMAILS[1], "n": NOTE}},
        ]
    }
    status, body = post(port, "/v1/batch", batch, auth)
    assert status == 200, body


def _contacts_with_free_text(tmp_path: Path) -> Path:
    """The example export plus two calls whose queue and agent hold contact details."""
    path = tmp_path / "contacts.csv"
    shutil.copy(EXAMPLES / "contacts.csv", path)
    rows = [
        ("C-FREE-1", f"callback {FREE[2]}", f"agent {FREE[4]}"),
        ("C-FREE-2", f"toll free {FREE[3]}", f"desk {FREE[0]}"),
    ]
    with open(path, "a", newline="") as fh:
        writer = csv.writer(fh)
        for contact_id, queue, agent in rows:
            times = ["03/03/2025 10:00:00", "03/03/2025 10:01:00", "03/03/2025 10:05:00"]
            writer.writerow([contact_id, queue, *times, agent, "RES", 0, "", "", "c-9", 60, 240])
    return path


def _published_file(tmp_path: Path) -> Path:
    """A touchpoints file for `journeys publish` whose texts hold contact details."""
    path = tmp_path / "events.jsonl"
    event = {
        "event_id": "6f1b1c4e-7d0a-4c1e-9a55-3b7d8e2f9a10",
        "channel": "web",
        "source": "web-import",
        "event_type": "note_left",
        "occurred_at": "2025-03-03T10:00:00+00:00",
        "identity": {"customer_id": "c-9"},
        "touchpoint": "/help",
        "properties": {"note": NOTE},
    }
    path.write_bytes(orjson.dumps(event) + b"\n")
    return path


def _scan(where: str, blob: bytes, known: list[bytes]) -> None:
    assert not ANY_EMAIL.search(blob), (where, ANY_EMAIL.search(blob))
    assert not ANY_PHONE.search(blob), (where, ANY_PHONE.search(blob))
    flat = _digits(blob)
    for value_bytes in known:
        assert value_bytes not in blob, (where, value_bytes)
        digits = _digits(value_bytes)
        if len(digits) >= 9:
            assert digits not in flat or b"@" in value_bytes, (where, value_bytes)


def test_every_topic_is_free_of_contact_details(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    port = free_port()
    collector = start_collector(settings, port, SOURCES, log)
    processes.append(collector)
    _send_to_collector(port)
    terminate(collector, 30)

    err = tmp_path / "ingest.err"
    with open(err, "w") as out:
        run_ingest(
            settings,
            "call-center",
            _contacts_with_free_text(tmp_path),
            MAPPINGS / "contact_center.toml",
            out,
        )
        run_ingest(settings, "store", EXAMPLES / "pos.jsonl", MAPPINGS / "pos.toml", out)
    assert not ANY_EMAIL.search(err.read_bytes()) and not ANY_PHONE.search(err.read_bytes())
    assert publish_file(settings, _published_file(tmp_path)) == 0

    # The example exports hold fixed dates (2025): the ingest stage must take them whenever
    # this runs, rather than refuse them as older than `processor.max_event_age`.
    ingest = journeys(
        settings, "process", "ingest", log=log, JOURNEYS_PROCESSOR__MAX_EVENT_AGE="P36500D"
    )
    processes.append(ingest)
    topics = Topics.from_settings(settings.topics)
    drain(settings, stage_topics(settings, "ingest"), [ingest], log, timeout=120, passes=1)
    identity = journeys(settings, "process", "identity", log=log)
    processes.append(identity)
    stages = stage_topics(settings, "identity")
    drain(settings, stages, [ingest, identity], log, timeout=120, passes=1)
    sink = journeys(settings, "sink", "--idle-exit", "4", log=log)
    processes.append(sink)
    assert sink.wait(timeout=180) == 0, log.read_text()[-3000:]
    stop([ingest, identity], log)

    admin = admin_client(settings)
    mine = sorted(
        t for t in admin.list_topics(timeout=10).topics if t.startswith(settings.topics.prefix)
    )
    assert {
        topics.raw,
        topics.touchpoints,
        topics.dlq_ingest,
        topics.stitched,
        topics.identity_links,
        topics.identity_audit,
    } <= set(mine)
    known = _contact_values()
    scanned = 0
    for topic in mine:
        for key, value in read_all(settings, topic):
            _scan(topic, (key or b"") + b"\n" + (value or b""), known)
            scanned += 1
    assert scanned > 100

    rows = 0
    with session(settings.clickhouse_dsn, create=False) as ch:
        tables = ch.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND NOT is_temporary"
        ).result_rows
        for (table,) in tables:
            for row in ch.query(f"SELECT * FROM `{table}`").result_rows:
                _scan(table, repr(row).encode() + b"\n" + str(row).encode(), known)
                rows += 1
        # The texts arrived, hashed: the free-text calls and records are stored.
        notes = ch.query(
            "SELECT count() FROM touchpoints WHERE source IN ('web-import', 'genesys-export') "
            "AND (position(toString(properties), 'dev:') > 0 OR position(touchpoint, 'dev:') > 0)"
        ).result_rows[0][0]
    assert rows > 100 and notes >= 3
