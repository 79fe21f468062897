"""A stage worker's id: unique per live process by default, the same across a restart, and a
second live worker with an explicit id refused; each stage's own metrics port."""

from __future__ import annotations

import socket
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from schemas.settings import STAGE_METRICS_PORTS, ProcessorSettings, Settings
from stream_processors.runtime import worker_id
from stream_processors.runtime.worker import serve_metrics


def settings(tmp_path: Path, **processor: Any) -> Settings:
    return Settings(data_dir=tmp_path, processor=ProcessorSettings(**processor))


def test_default_ids_are_unique_among_live_workers_and_reused_after_one_stops(
    tmp_path: Path,
) -> None:
    host = socket.gethostname()
    first = worker_id.claim(settings(tmp_path), "ingest")
    second = worker_id.claim(settings(tmp_path), "ingest")
    other_stage = worker_id.claim(settings(tmp_path), "journeys")
    assert (first.worker_id, second.worker_id) == (f"{host}-0", f"{host}-1")
    assert other_stage.worker_id == f"{host}-0"
    first.release()  # the process died: its restart takes its id back, and fences its leftovers
    restarted = worker_id.claim(settings(tmp_path), "ingest")
    assert restarted.worker_id == f"{host}-0"
    for claim in (second, other_stage, restarted):
        claim.release()


def test_an_explicit_id_held_on_this_host_is_refused_naming_the_setting(tmp_path: Path) -> None:
    held = worker_id.claim(settings(tmp_path, worker_id="ingest-a"), "ingest")
    assert held.worker_id == "ingest-a"
    with pytest.raises(worker_id.DuplicateWorkerError) as refused:
        worker_id.claim(settings(tmp_path, worker_id="ingest-a"), "ingest")
    held.release()
    message = str(refused.value)
    assert message.startswith("another ingest worker runs with worker id 'ingest-a' (on this host)")
    assert "JOURNEYS_PROCESSOR__WORKER_ID" in message


class FakeAdmin:
    """describe_consumer_groups answering with members of the given client ids."""

    def __init__(self, *client_ids: str) -> None:
        self.client_ids = client_ids

    def describe_consumer_groups(self, groups: list[str], **_: Any) -> dict[str, Future[Any]]:
        members = [SimpleNamespace(client_id=c, host="/10.0.0.7") for c in self.client_ids]
        done: Future[Any] = Future()
        done.set_result(SimpleNamespace(members=members))
        return {groups[0]: done}


def test_a_live_group_member_with_the_id_refuses_the_start(tmp_path: Path) -> None:
    admin = FakeAdmin(worker_id.client_id("w1"), worker_id.client_id("w2"))
    with pytest.raises(worker_id.DuplicateWorkerError, match=r"'w1' \(on 10\.0\.0\.7\)"):
        worker_id.refuse_if_running(settings(tmp_path), "ingest", "w1", admin, patience=0)
    worker_id.refuse_if_running(settings(tmp_path), "ingest", "w3", admin, patience=0)


def test_every_stage_has_its_own_default_metrics_port() -> None:
    ports = [ProcessorSettings().metrics_port_of(stage) for stage in STAGE_METRICS_PORTS]
    assert len(set(ports)) == len(ports) == 4
    assert ProcessorSettings(metrics_port=None).metrics_port_of("ingest") is None
    assert ProcessorSettings(metrics_port=9500).metrics_port_of("journeys") == 9500


def test_metrics_port_0_serves_on_a_free_port_and_says_which() -> None:
    port = serve_metrics(0)
    assert port is not None and port > 0
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
