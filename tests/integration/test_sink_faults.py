"""The sink under weather and bad data, on the real broker and chDB: a batch ClickHouse
refuses for spanning too many months is split and arrives whole; a row ClickHouse cannot
parse goes to the sink's dead-letter topic while its neighbours and everything after it
arrive, each once, and a replay inserts it after a fix; ClickHouse unwritable for a while
(the `journeys db serve` that the sink writes through is stopped, then started again)
neither stops the sink nor loses or doubles a row.

Rows are written straight to the topics the sink reads (as a stage would, outside a
transaction), so each test runs only the sink."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from deploy.kafka_admin import ensure_topics
from deploy.local.broker import LocalBroker
from schemas.envelope import encode
from schemas.settings import LocalBrokerSettings, Settings
from schemas.topics import Topics
from sinks.clickhouse import reader_dsn, reading, session

from .helpers import ROOT, free_port, journeys, read_all, reap, stop, wait_for

# --- rows and topics ---------------------------------------------------------------------


def touchpoint(month: int, n: int) -> dict[str, Any]:
    """A touchpoint row of `stitched` in month `month` counted from January 2015."""
    return {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "channel": "web",
        "source": "web-shop",
        "event_type": "page_view",
        "schema_version": 2,
        "occurred_at": f"{2015 + month // 12}-{month % 12 + 1:02d}-15T12:00:00.000Z",
        "received_at": "2026-01-01T00:00:00.000Z",
        "identity": {"anonymous_id": f"a{n}"},
        "properties": {},
        "backfill": True,
        "friction": [],
        "person_id": f"p{n}",
        "person_key": f"anonymous_id:a{n}",
    }


def journey(n: int, touchpoints: object = 1) -> dict[str, Any]:
    """A row of `journey-updates`; `touchpoints` of another type makes it a poison row."""
    return {
        "journey_id": f"j-{n:06d}",
        "definition_id": "purchase",
        "definition_version": 1,
        "person_id": f"p{n}",
        "status": "open",
        "stage": "discover",
        "started_at": "2026-01-01T00:00:00.000Z",
        "stages": [],
        "channels": ["web"],
        "touchpoints": touchpoints,
        "friction": 0,
        "version": 1,
    }


def publish(
    settings: Settings, topic: str, messages: list[tuple[int, list[dict[str, Any]]]]
) -> None:
    """Each (partition, rows) as one envelope, in order."""
    producer = Producer({**settings.kafka.as_librdkafka_dict(), "enable.idempotence": True})
    for partition, rows in messages:
        producer.produce(topic, encode([orjson.dumps(r) for r in rows], None), partition=partition)
    assert producer.flush(30) == 0


def count(settings: Settings, sql: str) -> int:
    with reading(settings.clickhouse_dsn) as ch:
        return int(ch.query(sql).result_rows[0][0])


def sink_dead_letters(settings: Settings) -> list[tuple[bytes, dict[str, Any]]]:
    topic = Topics.from_settings(settings.topics).dlq_sink
    return [(k, orjson.loads(v)) for k, v in read_all(settings, topic) if v is not None]


def sink(settings: Settings, log: Path, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    return journeys(settings, "sink", *args, log=log, JOURNEYS_LOG_LEVEL="INFO", **extra)


# --- a refusal that splitting fixes ------------------------------------------------------


def test_a_batch_spanning_101_months_is_split_and_arrives_whole_even_after_a_crash(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """ClickHouse refuses an insert block spanning more than 100 partitions (code 252, `Too
    many partitions for single INSERT block`): the batch is cut in halves, which fit. The
    first sink dies after inserting the halves and before committing; the next rebuilds the
    same batch, gets the same refusal, cuts the same halves, and ClickHouse drops them."""
    topics = Topics.from_settings(settings.topics)
    # 101 messages of one touchpoint each, every one in another month, all in one batch.
    publish(settings, topics.stitched, [(0, [touchpoint(m, m)]) for m in range(101)])
    log = tmp_path / "sink.log"

    crashing = sink(
        settings, log, "--idle-exit", "20", JOURNEYS_FAULTS__SINK_EXIT_AFTER_INSERTS="1"
    )
    processes.append(crashing)
    assert crashing.wait(timeout=60) == 86, log.read_text()[-3000:]
    again = sink(settings, log, "--idle-exit", "3")
    processes.append(again)
    assert again.wait(timeout=60) == 0, log.read_text()[-3000:]

    text = log.read_text()
    assert text.count("splitting it in two") == 2, text[-3000:]  # once per sink
    assert "Too many partitions for single INSERT block" in text
    with session(settings.clickhouse_dsn) as ch:
        plain, months, events = ch.query(
            "SELECT count(), uniqExact(toYYYYMM(occurred_at)), uniqExact(event_id) FROM touchpoints"
        ).result_rows[0]
    assert (plain, months, events) == (101, 101, 101)
    assert sink_dead_letters(settings) == []


# --- a refusal that splitting cannot fix -------------------------------------------------


def test_a_poison_row_is_dead_lettered_and_everything_else_arrives_once(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    topics = Topics.from_settings(settings.topics)
    poison = journey(1_000, touchpoints="not a number")
    first = [
        (p, [journey(100 * m + 10 * p + r) for r in range(5)]) for m in range(6) for p in range(4)
    ]
    # The poison row sits in the middle of a message of partition 1, in the middle of a batch.
    first.insert(9, (1, [journey(2_000), poison, journey(2_001)]))
    publish(settings, topics.journey_updates, first)
    expected = {r["journey_id"] for _p, rows in first for r in rows} - {poison["journey_id"]}

    log = tmp_path / "sink.log"
    running = sink(settings, log)
    processes.append(running)
    journeys_in = "SELECT count() FROM journeys"
    wait_for(
        lambda: _served(settings) and count(settings, journeys_in) == len(expected),
        60,
        "the first rows",
        [running],
        log,
    )
    # Later events, after the refusal, still arrive.
    later = [(p, [journey(5_000 + 10 * p + r) for r in range(3)]) for p in range(4)]
    publish(settings, topics.journey_updates, later)
    expected |= {r["journey_id"] for _p, rows in later for r in rows}
    wait_for(
        lambda: count(settings, journeys_in) == len(expected), 30, "the later rows", [running], log
    )
    with reading(settings.clickhouse_dsn) as ch:
        stored = [str(r[0]) for r in ch.query("SELECT journey_id FROM journeys").result_rows]
    assert sorted(stored) == sorted(expected)  # each once, without FINAL

    ((key, letter),) = sink_dead_letters(settings)
    assert letter["table"] == "journeys" and letter["stage"] == "sink"
    assert letter["error_code"] == 27 and "Cannot parse input" in letter["error"]
    assert orjson.loads(letter["rows"]) == [poison] and letter["row_count"] == 1
    assert (letter["source_topic"], letter["source_partition"]) == (topics.journey_updates, 1)
    assert letter["first_offset"] == letter["last_offset"]
    assert key.decode() == letter["token"]
    assert letter["token"].startswith(f"{topics.journey_updates}/{letter['source_topic_id']}/1/")
    assert letter["token"].endswith(f"/{letter['first_offset']}#1-1")  # row 1 of its message
    text = log.read_text()
    assert "sent to" in text and letter["token"] in text

    # A replay before any fix: still refused, left for the next replay (exit code 1).
    replay_log = tmp_path / "replay.log"
    for _ in range(2):
        replay = journeys(settings, "sink", "replay-dead-letters", log=replay_log)
        assert replay.wait(timeout=60) == 1, replay_log.read_text()
    assert replay_log.read_text().count("1 still refused") == 2

    # The fix: the column takes text now. The replay inserts the row once, however often it
    # is replayed (a dead letter sent twice after a crash is the same record twice).
    with reading(settings.clickhouse_dsn) as ch:
        ch.command("ALTER TABLE journeys MODIFY COLUMN touchpoints String")
    replay = journeys(settings, "sink", "replay-dead-letters", log=replay_log)
    assert replay.wait(timeout=60) == 0, replay_log.read_text()
    assert "1 inserted (1 rows;" in replay_log.read_text()
    producer = Producer(settings.kafka.as_librdkafka_dict())
    producer.produce(topics.dlq_sink, orjson.dumps(letter), key=key)
    assert producer.flush(30) == 0
    replay = journeys(settings, "sink", "replay-dead-letters", log=replay_log)
    assert replay.wait(timeout=60) == 0, replay_log.read_text()
    assert replay_log.read_text().count("1 inserted (1 rows;") == 2
    stop([running], log)
    with session(settings.clickhouse_dsn) as ch:
        poisoned = ch.query(
            "SELECT count(), any(touchpoints) FROM journeys WHERE journey_id = 'j-001000'"
        ).result_rows[0]
        total = ch.query("SELECT count() FROM journeys").result_rows[0][0]
    assert poisoned == (1, "not a number")
    assert total == len(expected) + 1


def _served(settings: Settings) -> bool:
    """Is the running sink serving its folder yet (so others can read it)?"""
    return reader_dsn(settings.clickhouse_dsn) != settings.clickhouse_dsn


# --- weather -----------------------------------------------------------------------------


def test_clickhouse_unwritable_for_20_seconds_neither_stops_the_sink_nor_loses_a_row(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """`journeys db serve` holds the folder and the sink writes through its HTTP interface,
    as it would to a ClickHouse server; the server is stopped for 20 s, then started again
    on the same port."""
    topics = Topics.from_settings(settings.topics)
    port = str(free_port())
    serve_log, log = tmp_path / "serve.log", tmp_path / "sink.log"
    server = journeys(settings, "db", "serve", "--port", port, log=serve_log)
    processes.append(server)
    wait_for(lambda: _served(settings), 60, "db serve", [server], serve_log)
    running = sink(settings, log)
    processes.append(running)

    def wave(start: int) -> list[tuple[int, list[dict[str, Any]]]]:
        return [
            (p, [journey(start + 100 * m + 10 * p + r) for r in range(10)])
            for m in range(10)
            for p in range(4)
        ]

    def arrived(n: int) -> bool:
        try:  # the sink creates the table when it starts
            with session(f"http://127.0.0.1:{port}") as ch:
                return int(ch.query("SELECT count() FROM journeys").result_rows[0][0]) == n
        except Exception:
            return False

    publish(settings, topics.journey_updates, wave(0))
    wait_for(lambda: arrived(400), 60, "the first wave", [running, server], log)

    stop([server], serve_log)
    publish(settings, topics.journey_updates, wave(100_000))
    time.sleep(20)
    assert running.poll() is None, log.read_text()[-3000:]
    text = log.read_text()
    assert "unreachable for" in text and "retrying in" in text, text[-3000:]

    server = journeys(settings, "db", "serve", "--port", port, log=serve_log)
    processes.append(server)
    wait_for(lambda: _served(settings), 60, "db serve again", [server], serve_log)
    wait_for(lambda: arrived(800), 60, "the second wave", [running, server], log)
    publish(settings, topics.journey_updates, wave(200_000))
    wait_for(lambda: arrived(1_200), 30, "the third wave", [running, server], log)
    assert "written again after" in log.read_text()
    stop([running], log)
    stop([server], serve_log)

    with session(settings.clickhouse_dsn) as ch:
        plain, distinct = ch.query(
            "SELECT count(), uniqExact(journey_id) FROM journeys"
        ).result_rows[0]
    assert (plain, distinct) == (1_200, 1_200)
    assert sink_dead_letters(settings) == []


def test_a_broker_restart_mid_stream_neither_stops_the_sink_nor_loses_a_row(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """A broker of its own, stopped while the sink has a wave in hand and started again:
    commits fail meanwhile (transport errors, then a coordinator that is still loading:
    `Waiting for coordinator`), the sink waits them out, and every row arrives once."""
    broker = LocalBroker(
        LocalBrokerSettings(
            instance=f"sink-restart-{os.getpid()}", port=free_port(), controller_port=free_port()
        ),
        ROOT / ".local",
    )
    broker.wipe()
    broker.start()
    try:
        _ride_out_a_restart(settings, broker, processes, tmp_path)
    finally:
        for proc in processes:
            reap(proc)
        broker.stop()
        broker.wipe()


def _ride_out_a_restart(
    settings: Settings,
    broker: LocalBroker,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    own = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap})}
    )
    ensure_topics(own)
    topics = Topics.from_settings(own.topics)
    log = tmp_path / "sink.log"
    running = sink(own, log)
    processes.append(running)

    def wave(start: int) -> list[tuple[int, list[dict[str, Any]]]]:
        return [
            (p, [journey(start + 100 * m + 10 * p + r) for r in range(10)])
            for m in range(10)
            for p in range(4)
        ]

    def arrived(n: int) -> bool:
        return _served(own) and count(own, "SELECT count() FROM journeys") == n

    publish(own, topics.journey_updates, wave(0))
    wait_for(lambda: arrived(400), 60, "the first wave", [running], log)
    publish(own, topics.journey_updates, wave(100_000))
    time.sleep(0.5)  # the sink has the wave in hand: its batches are due in a second
    broker.stop()
    time.sleep(5)
    assert running.poll() is None, log.read_text()[-3000:]
    broker.start()
    publish(own, topics.journey_updates, wave(200_000))
    wait_for(lambda: arrived(1_200), 60, "every wave", [running], log)
    stop([running], log)
    with session(own.clickhouse_dsn) as ch:
        plain, distinct = ch.query(
            "SELECT count(), uniqExact(journey_id) FROM journeys"
        ).result_rows[0]
    assert (plain, distinct) == (1_200, 1_200)
