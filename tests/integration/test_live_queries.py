"""Analysts query the embedded engine while the pipeline writes it: the sink owns the chDB
folder and serves it, and two clients we did not write (clickhouse-connect's HTTP client and
the ClickHouse JDBC driver) read it repeatedly while the sink inserts the simulator's traffic."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect

from producers.simulator.config import SimConfig
from producers.simulator.runner import simulate
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.clickhouse import reader_dsn, session

from .helpers import drain, journeys, stage_topics, stop, wait_for
from .jdbc_client import run_jdbc

# Distinct events, so a merge that folds a re-sent duplicate never lowers what readers see.
STORED = "SELECT uniqExact(event_id) FROM touchpoints"


def test_counts_read_live_through_http_and_jdbc_only_grow_and_end_at_the_truth(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    topics = Topics.from_settings(settings.topics)
    log = tmp_path / "pipeline.log"
    sink = journeys(settings, "sink", log=log)
    ingest = journeys(settings, "process", "ingest", log=log)
    identity = journeys(settings, "process", "identity", log=log)
    watch = [sink, ingest, identity]
    processes.extend(watch)
    dsn = settings.clickhouse_dsn
    wait_for(lambda: reader_dsn(dsn) != dsn, 120, "the sink to serve its folder", watch, log)
    served = urlsplit(reader_dsn(dsn))
    jdbc_url = f"jdbc:clickhouse://{served.hostname}:{served.port}/default"

    http_seen: list[int] = []
    jdbc_seen: list[int] = []
    done = threading.Event()

    def read_http() -> None:
        client = clickhouse_connect.get_client(dsn=reader_dsn(dsn))
        while not done.wait(0.2):
            http_seen.append(int(client.query(STORED).result_rows[0][0]))
        http_seen.append(int(client.query(STORED).result_rows[0][0]))
        client.close()

    def read_jdbc() -> None:  # one JVM per read, as a BI tool's separate connections would be
        while not done.is_set():
            jdbc_seen.append(int(run_jdbc(jdbc_url, "default", "", [STORED])[0].rows[0][0] or 0))
        jdbc_seen.append(int(run_jdbc(jdbc_url, "default", "", [STORED])[0].rows[0][0] or 0))

    readers = [threading.Thread(target=read_http), threading.Thread(target=read_jdbc)]
    for reader in readers:
        reader.start()
    try:
        truth = simulate(settings, SimConfig(customers=4_000, days=2, seed=29), None, rate=1_500)
        sink_topics = [topics.stitched, topics.identity_links, topics.identity_map]
        stages = {**stage_topics(settings, "ingest", "identity"), "sink": sink_topics}
        drain(settings, stages, watch, log, timeout=180, passes=1)
    finally:
        done.set()
        for reader in readers:
            reader.join(timeout=60)
    stop(watch, log)

    for seen in (http_seen, jdbc_seen):
        assert seen == sorted(seen), f"a count went down: {seen}"
        assert seen[-1] == truth.events
    # Both read while the sink was inserting, not only before or after it.
    assert any(0 < n < truth.events for n in http_seen), http_seen
    assert any(0 < n < truth.events for n in jdbc_seen), jdbc_seen
    with session(dsn) as ch:  # the sink has stopped: the folder opens directly again
        assert ch.query(STORED).result_rows[0][0] == truth.events
