"""No raw e-mail address or phone number reaches Kafka: contact details go into the collector
(traits, properties, free text, an invalid call) and the adapters' example files, the ingest
stage runs, then every topic of the deployment is scanned, decompressed, for any e-mail
address or phone number at all, not only for the ones this test sent."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

from deploy.kafka_admin import admin_client
from producers.adapters.runner import run_ingest
from schemas.settings import Settings
from schemas.topics import Topics

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


def _contact_values() -> list[bytes]:
    values = [v.encode() for v in EMAILS + PHONES]
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
                    "nested": {"backup_phone": PHONES[2]},
                },
            },
            {"type": "track", "event": "", "properties": {"email": EMAILS[1]}},  # invalid
        ]
    }
    status, body = post(port, "/v1/batch", batch, auth)
    assert status == 200, body


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
            EXAMPLES / "contacts.csv",
            MAPPINGS / "contact_center.toml",
            out,
        )
        run_ingest(settings, "store", EXAMPLES / "pos.jsonl", MAPPINGS / "pos.toml", out)
    assert not ANY_EMAIL.search(err.read_bytes()) and not ANY_PHONE.search(err.read_bytes())

    ingest = journeys(settings, "process", "ingest", log=log)
    processes.append(ingest)
    topics = Topics.from_settings(settings.topics)
    drain(settings, stage_topics(settings, "ingest"), [ingest], log, timeout=120, passes=1)
    identity = journeys(settings, "process", "identity", log=log)
    processes.append(identity)
    stages = stage_topics(settings, "identity")
    drain(settings, stages, [ingest, identity], log, timeout=120, passes=1)
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
            blob = (key or b"") + b"\n" + (value or b"")
            scanned += 1
            assert not ANY_EMAIL.search(blob), (topic, ANY_EMAIL.search(blob))
            assert not ANY_PHONE.search(blob), (topic, ANY_PHONE.search(blob))
            flat = _digits(blob)
            for value_bytes in known:
                assert value_bytes not in blob, (topic, value_bytes)
                digits = _digits(value_bytes)
                if len(digits) >= 9:
                    assert digits not in flat or b"@" in value_bytes, (topic, value_bytes)
    assert scanned > 100
