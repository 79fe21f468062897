"""The faust wiring shared by every stage: the app, the commit hook and state ownership.

faust gives us the consumer group, rebalancing and offset commits. Everything a stage writes
goes through its `TransactionalSender`; `CommitSensor` commits that transaction right before
faust commits source offsets, and the state tables follow the partition assignment.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.sensors import Sensor

from schemas.settings import KafkaSettings, Settings
from schemas.topics import Topics
from stream_processors.runtime.sender import SenderError, TransactionalSender
from stream_processors.runtime.state import ChangelogTable
from stream_processors.runtime.transport import StageApp
from stream_processors.runtime.worker_id import client_id

log = logging.getLogger(__name__)

EXIT_STATE_UNSAFE = 70
EXIT_FAULT_INJECTED = 86


class CommitSensor(Sensor):
    """Commits the stage's Kafka transaction before faust commits the offsets it covers."""

    def __init__(
        self,
        sender: TransactionalSender,
        exit_after: int | None = None,
        kill_in_transaction: int | None = None,
    ) -> None:
        super().__init__()
        self.sender = sender
        self.exit_after = exit_after
        self.kill_in_transaction = kill_in_transaction

    def on_commit_initiated(self, consumer: Any) -> Any:
        if (
            self.kill_in_transaction is not None
            and self.sender.transactions >= self.kill_in_transaction
            and self.sender.pending
        ):
            log.warning("fault injection: SIGKILL with the open transaction on the broker")
            self.sender.send_open_transaction()
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            self.sender.commit()
        except SenderError:
            # The in-memory state is now ahead of what Kafka holds; the only safe move is
            # to stop and let the restarted worker restore from the changelog.
            log.critical("transaction commit failed; exiting to restore", exc_info=True)
            os._exit(EXIT_STATE_UNSAFE)
        if self.exit_after is not None and self.sender.transactions >= self.exit_after:
            log.warning("fault injection: exiting between transaction and offset commit")
            os._exit(EXIT_FAULT_INJECTED)
        return None


def faust_broker_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """The same connection settings, in faust's terms."""
    hosts = [f"kafka://{h.strip()}" for h in kafka.bootstrap_servers.split(",")]
    kwargs: dict[str, Any] = {"broker": hosts}
    context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
        if kafka.ssl_certfile:
            context.load_cert_chain(
                str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
            )
    if kafka.security_protocol.startswith("SASL"):
        kwargs["broker_credentials"] = faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    elif context is not None:
        kwargs["broker_credentials"] = faust.SSLCredentials(context)
    return kwargs


def build_app(settings: Settings, stage: str, fetch_bytes: int = 16 * 1024 * 1024) -> faust.App:
    """A faust app for one stage, configured from the settings; `fetch_bytes`: what one
    fetch takes of a partition at most."""
    proc = settings.processor
    datadir = settings.data_dir / "faust" / stage
    datadir.mkdir(parents=True, exist_ok=True)
    return StageApp(
        settings.topics.group(stage),
        **faust_broker_kwargs(settings.kafka),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        broker_commit_interval=proc.commit_interval_seconds,
        # A dead worker's partitions move after this long; faust's default waits ~60 s.
        broker_session_timeout=proc.session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, proc.session_timeout_seconds / 5),
        broker_request_timeout=max(40.0, proc.session_timeout_seconds * 4),
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=fetch_bytes,
        stream_buffer_maxsize=256,
        web_enabled=False,
        datadir=str(datadir),
        logging_config=None,
        # How this worker shows in its group: a second one with its id is refused at start.
        broker_client_id=client_id(worker_id_of(settings)),
    )


def worker_id_of(settings: Settings) -> str:
    """The worker id `worker.run` claimed (or the one set); a stage built without it, as in
    tests, runs as `<hostname>-<pid>`."""
    return settings.processor.worker_id or f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class StageRuntime:
    """The pieces a stage shares with its agents: sender and state tables, each table with the
    input topic whose partitions it follows."""

    app: faust.App
    sender: TransactionalSender
    tables: list[tuple[ChangelogTable, str]] = field(default_factory=list)
    exit_after_transactions: int | None = None
    kill_in_transaction: int | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Release what the stage holds (called once the worker stopped)."""
        for close in self.closers:
            close()
        self.sender.close()

    def add_table(self, settings: Settings, stage: str, name: str, source: str) -> ChangelogTable:
        """Another state table, following the partitions of input topic `source`."""
        topics = Topics.from_settings(settings.topics)
        table = ChangelogTable(name, topics.changelog(stage, name), self.sender, settings.kafka)
        self.tables.append((table, source))
        return table

    def partition_agent(
        self,
        topic: str,
        name: str,
        tables: tuple[ChangelogTable, ...],
        handle: Callable[[bytes | None, int, int], None],
    ) -> None:
        """An agent on `topic` that hands each message to `handle(value, partition, offset)`
        once every table in `tables` holds that partition's state (restored), and skips
        partitions this worker lost meanwhile."""
        app, sender = self.app, self.sender

        @app.agent(app.topic(topic, value_type=bytes, key_type=bytes), name=name)
        async def run(stream: Any) -> None:
            async for event in stream.events():
                msg = event.message
                p = msg.partition
                for table in tables:
                    await table.ready(p)
                if all(p in table.partitions for table in tables):
                    handle(msg.value, p, msg.offset)
                    sender.poll()

    def install(self) -> None:
        """Hook the commit sensor and the assignment signals into the app."""
        self.app.sensors.add(
            CommitSensor(self.sender, self.exit_after_transactions, self.kill_in_transaction)
        )

        async def revoked(_sender: Any, *_args: Any, **_kwargs: Any) -> None:
            # Make everything processed so far durable before the partitions may move.
            self.sender.commit()

        async def assigned(_sender: Any, tps: Iterable[Any], **_kwargs: Any) -> None:
            assignment = list(tps)
            for table, source in self.tables:
                await table.assign({tp.partition for tp in assignment if tp.topic == source})

        # faust's signal types do not admit coroutine functions, which it does accept.
        self.app.on_partitions_revoked.connect(cast(Any, revoked))
        self.app.on_partitions_assigned.connect(cast(Any, assigned))


def stage_runtime(
    settings: Settings,
    stage: str,
    source_topic: str,
    table: str,
    fetch_bytes: int = 16 * 1024 * 1024,
) -> tuple[StageRuntime, ChangelogTable]:
    """A stage's app, transactional sender and changelog-backed state, hooked together; add
    more tables with `add_table` before the app starts."""
    app = build_app(settings, stage, fetch_bytes)
    sender = TransactionalSender(
        settings.kafka, f"{settings.topics.group(stage)}-{worker_id_of(settings)}"
    )
    faults = settings.faults
    runtime = StageRuntime(
        app, sender, [], faults.stage_exit_after_transactions, faults.stage_kill_in_transaction
    )
    state = runtime.add_table(settings, stage, table, source_topic)
    runtime.install()
    return runtime, state
