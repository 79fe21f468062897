"""Worker ids on the real broker: two workers of a stage started without one get their own,
and a second worker started with a live worker's explicit id is refused at start, naming the
setting, instead of the two fencing each other's transactions in a crash loop."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient

from schemas.settings import Settings
from stream_processors.runtime.worker_id import client_id

from .helpers import ROOT, env_for, journeys, terminate, wait_for


def members(settings: Settings, stage: str) -> list[str]:
    """The client ids of the live members of a stage's group."""
    admin = AdminClient({**settings.kafka.as_librdkafka_dict()})
    group = settings.topics.group(stage)
    try:
        found = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    except Exception:  # not there yet
        return []
    return sorted(str(m.client_id) for m in found.members)


def worker(settings: Settings, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """`journeys process ingest` with no worker id set (the default)."""
    env = env_for(settings, **extra)
    del env["JOURNEYS_PROCESSOR__WORKER_ID"]
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "process", "ingest"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_workers_started_without_an_id_get_one_each(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    processes += [worker(settings, log), worker(settings, log)]
    host = socket.gethostname()
    expected = sorted(client_id(f"{host}-{n}") for n in (0, 1))
    wait_for(lambda: members(settings, "ingest") == expected, 90, "both workers", processes, log)
    for proc in processes:
        assert terminate(proc) == 0, log.read_text()[-3000:]


def test_a_second_worker_with_a_live_workers_id_is_refused_at_start(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    log = tmp_path / "first.log"
    first = journeys(settings, "process", "ingest", log=log)
    processes.append(first)
    mine = client_id(str(settings.processor.worker_id))
    wait_for(lambda: members(settings, "ingest") == [mine], 90, "the first worker", [first], log)
    # Another host: its own data folder, so only the group can tell.
    second_log = tmp_path / "second.log"
    second = journeys(
        settings, "process", "ingest", log=second_log, JOURNEYS_DATA_DIR=str(tmp_path / "other")
    )
    processes.append(second)
    assert second.wait(60) == 2, second_log.read_text()[-3000:]
    said = second_log.read_text().splitlines()
    assert said[-1] == (
        f"journeys: error: another ingest worker runs with worker id "
        f"'{settings.processor.worker_id}' (on 127.0.0.1); two workers with one id fence each "
        "other's Kafka transactions: give each its own JOURNEYS_PROCESSOR__WORKER_ID, or leave "
        "it unset for a unique one"
    ), "\n".join(said)
    # The running worker was not fenced: it is still in its group and stops cleanly.
    assert first.poll() is None and members(settings, "ingest") == [mine]
    assert terminate(first) == 0, log.read_text()[-3000:]
