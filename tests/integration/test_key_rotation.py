"""Key rotation on the real broker and chDB: a customer identified by e-mail before and after
the contact-hashing key rotates stays one person, both one known when `journeys privacy
rotate-key` ran and one first seen, under the old key, during the rotation window."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from producers.files import publisher
from producers.pii import PiiHasher
from schemas.settings import PiiSettings, Settings
from sinks.clickhouse import reading

from .helpers import drain, journeys, stage_topics, stop

SECOND_KEY = "journeys-test-second-key"


def touchpoint(channel: str, **identity: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "channel": channel,
        "source": f"{channel}-test",
        "event_type": "page_view" if channel == "web" else "screen_view",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=30)).isoformat(),
        "identity": identity,
        "properties": {},
    }


def publish(settings: Settings, *events: dict[str, Any]) -> None:
    pub = publisher(settings)
    for event in events:
        name, value = next(iter(event["identity"].items()))
        pub.publish_fragment(f"{name}:{value}", orjson.dumps(event))
    pub.flush()


def stored(settings: Settings, events: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """event id -> (person id, stored e-mail hash) in ClickHouse."""
    with reading(settings.clickhouse_dsn) as ch:
        rows = ch.query(
            "SELECT toString(event_id), person_id, identity.email_hash FROM touchpoints FINAL "
            "WHERE toString(event_id) IN {ids:Array(String)}",
            parameters={"ids": [e["event_id"] for e in events]},
        ).result_rows
    return {r[0]: (r[1], r[2]) for r in rows}


def test_a_customer_stays_one_person_across_a_key_rotation(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    old = PiiHasher(settings.pii)
    keys = {"dev": settings.pii.keys["dev"].get_secret_value(), "k2": SECOND_KEY}
    rotated = PiiSettings(keys=keys, active_key_id="k2", derived_from={"k2": "dev"})
    new = PiiHasher(rotated)
    rotation = {
        "JOURNEYS_PII__KEYS": orjson.dumps(keys).decode(),
        "JOURNEYS_PII__DERIVED_FROM": '{"k2": "dev"}',
        "JOURNEYS_PII__ACTIVE_KEY_ID": "k2",
        "JOURNEYS_PII__ROTATION_WINDOW_UNTIL": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    log = tmp_path / "pipeline.log"
    ingest = journeys(settings, "process", "ingest", log=log)
    others = [
        journeys(settings, "process", "identity", log=log),
        journeys(settings, "sink", log=log),
    ]
    processes += [ingest, *others]
    topics = stage_topics(settings, "ingest", "identity", "sink")

    before = touchpoint("web", email_hash=old.email("ann@example.com"), anonymous_id="a-1")
    publish(settings, before)
    drain(settings, topics, [ingest, *others], log, timeout=120, passes=1)
    stop([ingest], log)

    cli = tmp_path / "cli.log"
    run = journeys(settings, "privacy", "rotate-key", log=cli, **rotation)
    assert run.wait(120) == 0, cli.read_text()[-2000:]
    assert "1 contact hashes carried to key k2" in cli.read_text()

    ingest = journeys(settings, "process", "ingest", log=log, **rotation)
    processes.append(ingest)
    after = touchpoint("app", email_hash=new.email("ann@example.com"), device_id="d-1")
    # A producer not switched yet, then one that has: the window carries the first hash.
    late_old = touchpoint("web", email_hash=old.email("bo@example.com"), anonymous_id="a-2")
    publish(settings, after, late_old)
    drain(settings, topics, [ingest, *others], log, timeout=120, passes=1)
    late_new = touchpoint("app", email_hash=new.email("bo@example.com"), device_id="d-2")
    publish(settings, late_new)
    drain(settings, topics, [ingest, *others], log, timeout=120, passes=1)
    stop([ingest, *others], log)

    found = stored(settings, [before, after, late_old, late_new])
    assert len(found) == 4
    assert found[before["event_id"]] == found[after["event_id"]]
    assert found[late_old["event_id"]] == found[late_new["event_id"]]
    assert found[before["event_id"]][0] != found[late_old["event_id"]][0]
    assert found[after["event_id"]][1] == old.email("ann@example.com")  # its first form
