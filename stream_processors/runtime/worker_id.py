"""Which worker id a stage process runs as, and refusing a second live process with the same.

The worker id names the stage's transactional producer, `<group>-<worker_id>`. Kafka lets
one producer per transactional id live, and a new one fences the old: what a restarted
worker needs (it aborts what its dead predecessor left open at once, instead of readers
waiting out the transaction timeout, and a predecessor that is only paused can no longer
commit), and what two live workers with the same id must never do (they fence each other in
turn, a crash loop).

So the default is `<hostname>-<n>`, n the lowest slot that no live worker of the stage holds
on this host: a lock (`flock`) on `<data_dir>/faust/<stage>/workers/<id>.lock`, which the OS
releases when the process dies, even killed. A second worker on the host gets the next id;
a restarted one gets the lowest free slot, its predecessor's, so it fences what that one
left (with several workers restarting at once, ids may swap: each still fences one dead
predecessor, and the other's open transaction times out). A container or pod is a host of
its own, so there the id is `<hostname>-0`, stable across restarts. A pid or random suffix
would be unique too, but every restart would then leave its predecessor's transaction open
for its whole timeout, stalling every `read_committed` reader of those partitions.

An explicit id (JOURNEYS_PROCESSOR__WORKER_ID) takes the same lock, and before the producer
starts (which would fence the running one) the stage's consumer group is asked whether a
live member already runs with it: the worker is then refused, naming the setting.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from schemas.settings import Settings

SETTING = "JOURNEYS_PROCESSOR__WORKER_ID"
MAX_SLOTS = 1024


class DuplicateWorkerError(RuntimeError):
    """Another live worker of the stage runs with this worker id."""


@dataclass
class WorkerClaim:
    """A worker id held by this process until it exits (or `release`)."""

    worker_id: str
    lock: IO[str]

    def release(self) -> None:
        self.lock.close()


def client_id(worker_id: str) -> str:
    """The Kafka client id of a worker's faust clients: how its group membership shows it."""
    return f"journeys-worker-{worker_id}"


def claim(settings: Settings, stage: str) -> WorkerClaim:
    """The worker id this process runs `stage` as, locked on this host; `DuplicateWorkerError`
    when an explicit id is held by a live process here."""
    folder = settings.data_dir / "faust" / stage / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    explicit = settings.processor.worker_id
    if explicit is not None:
        lock = _try_lock(folder, explicit)
        if lock is None:
            raise DuplicateWorkerError(_refusal(stage, explicit, "on this host"))
        return WorkerClaim(explicit, lock)
    host = socket.gethostname()
    for slot in range(MAX_SLOTS):
        lock = _try_lock(folder, f"{host}-{slot}")
        if lock is not None:
            return WorkerClaim(f"{host}-{slot}", lock)
    raise DuplicateWorkerError(f"{MAX_SLOTS} workers of {stage} already run on this host")


def _try_lock(folder: Path, worker_id: str) -> IO[str] | None:
    handle = (folder / f"{worker_id.replace('/', '_')}.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def refuse_if_running(
    settings: Settings,
    stage: str,
    worker_id: str,
    admin: Any = None,
    patience: float | None = None,
) -> None:
    """`DuplicateWorkerError` when a member of the stage's group runs as `worker_id`. A
    member left by a killed predecessor leaves the group within the session timeout, so
    this waits that long (plus a little; or `patience` seconds) for it before refusing."""
    admin = admin or AdminClient({**settings.kafka.as_librdkafka_dict()})
    group = settings.topics.group(stage)
    if patience is None:
        patience = settings.processor.session_timeout_seconds + 3.0
    deadline = time.monotonic() + patience
    while True:
        hosts = _members(admin, group, client_id(worker_id))
        if not hosts:
            return
        if time.monotonic() >= deadline:
            where = f"on {', '.join(sorted(hosts))}"
            raise DuplicateWorkerError(_refusal(stage, worker_id, where))
        time.sleep(1.0)


def _members(admin: Any, group: str, wanted: str) -> set[str]:
    """The hosts of the members of `group` whose client id is `wanted`."""
    try:
        described: Any = admin.describe_consumer_groups([group], request_timeout=10)[group]
        members = described.result().members
    except KafkaException:  # no such group yet, or Kafka not answering: the start says so
        return set()
    return {str(m.host).lstrip("/") for m in members if m.client_id == wanted}


def _refusal(stage: str, worker_id: str, where: str) -> str:
    return (
        f"another {stage} worker runs with worker id {worker_id!r} ({where}); two workers "
        f"with one id fence each other's Kafka transactions: give each its own {SETTING}, "
        "or leave it unset for a unique one"
    )
