"""`journeys`: the one command for running, feeding and inspecting the pipeline.

Settings come from JOURNEYS_* environment variables and an optional TOML file
(JOURNEYS_SETTINGS_FILE); see `schemas/settings.py`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from deploy import logs
from schemas.settings import Settings

if TYPE_CHECKING:
    from deploy.local.broker import LocalBroker

EPILOG = (
    "Settings: JOURNEYS_* environment variables or a TOML file named by JOURNEYS_SETTINGS_FILE."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    from pydantic import ValidationError

    from deploy.kafka_admin import KafkaUnreachableError
    from deploy.local.broker import BrokerError
    from producers.publisher import PublishError
    from schemas.settings import load_settings
    from sinks.clickhouse import ClickHouseUnreachableError

    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"journeys: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return int(args.func(settings, args) or 0)
    except (KafkaUnreachableError, ClickHouseUnreachableError, BrokerError, PublishError) as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="journeys",
        description="Customer journeys from web, app, call center and store events, "
        "stitched and watched in the stream, stored in ClickHouse.",
        epilog=EPILOG,
    )
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    broker = sub.add_parser("broker", help="run the project-local Kafka broker (KRaft)")
    bsub = broker.add_subparsers(title="actions", metavar="ACTION")
    for name, func, text in (
        ("start", _broker_start, "start the broker and wait until it answers (no-op if running)"),
        ("stop", _broker_stop, "stop the broker by its pid and wait for it to exit"),
        ("status", _broker_status, "say whether the broker runs, and where"),
        ("run", _broker_run, "start the broker, run a command against it, stop what was started"),
        ("fetch", _broker_fetch, "download the broker's jars from Maven Central (once)"),
    ):
        b = bsub.add_parser(name, help=text, description=text, epilog=EPILOG)
        b.add_argument("--instance", help="instance name: own ports and data folder")
        b.add_argument("--port", type=int, help="client port")
        b.add_argument("--controller-port", type=int, help="KRaft controller port")
        if name == "run":
            b.add_argument("--fresh", action="store_true", help="wipe the instance's data first")
            b.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
        b.set_defaults(func=func)

    t = sub.add_parser("topics", help="create the pipeline's topics (idempotent)")
    t.set_defaults(func=_topics)
    db = sub.add_parser("db", help="ClickHouse schema")
    dsub = db.add_subparsers(title="actions", metavar="ACTION")
    m = dsub.add_parser("migrate", help="create missing tables (idempotent)")
    m.set_defaults(func=_migrate)
    dsub.add_parser("ddl", help="print the CREATE TABLE statements").set_defaults(func=_ddl)

    proc = sub.add_parser("process", help="run a stream-processing stage as a faust worker")
    proc.add_argument(
        "stage",
        choices=["ingest", "counts"],
        help="ingest: raw -> touchpoints (+ dead letters); "
        "counts: events per key on raw (the reference stateful stage)",
    )
    proc.set_defaults(func=_process)

    sink = sub.add_parser("sink", help="write the touchpoints topic into ClickHouse")
    sink.add_argument(
        "--idle-exit", type=float, metavar="SECONDS", help="exit after this long without data"
    )
    sink.set_defaults(func=_sink)

    pub = sub.add_parser("publish", help="publish touchpoints from a JSON Lines file to raw")
    pub.add_argument("file", type=Path, help="one event per line ('-' for stdin)")
    pub.set_defaults(func=_publish)

    gen = sub.add_parser("generate", help="publish synthetic multi-channel touchpoints to raw")
    gen.add_argument("--count", type=int, default=10_000)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--invalid-ratio", type=float, default=0.0)
    gen.add_argument("--duplicate-ratio", type=float, default=0.0)
    gen.set_defaults(func=_generate)

    rep = sub.add_parser(
        "report", help="summarize what reached ClickHouse and the dead-letter topic"
    )
    rep.set_defaults(func=_report)

    demo = sub.add_parser(
        "demo", help="run the whole pipeline on synthetic traffic and show the result"
    )
    demo.add_argument("--count", type=int, default=50_000, help="events to publish")
    demo.add_argument("--port", type=int, default=19292, help="port of the demo's own broker")
    demo.set_defaults(func=_demo)
    return p


def _broker(settings: Settings, args: argparse.Namespace) -> LocalBroker:
    from deploy.local.broker import LocalBroker

    local = settings.local_broker.model_copy(
        update={
            k: v
            for k, v in (
                ("instance", args.instance),
                ("port", args.port),
                ("controller_port", args.controller_port),
            )
            if v is not None
        }
    )
    return LocalBroker(local, settings.data_dir)


def _broker_start(settings: Settings, args: argparse.Namespace) -> int:
    broker = _broker(settings, args)
    started = broker.start()
    state = "started" if started else "already running"
    print(f"kafka {broker.settings.instance}: {state} on {broker.bootstrap}")
    return 0


def _broker_fetch(settings: Settings, args: argparse.Namespace) -> int:
    broker = _broker(settings, args)
    print(f"kafka jars: {broker.fetch_jars()}")
    return 0


def _broker_stop(settings: Settings, args: argparse.Namespace) -> int:
    broker = _broker(settings, args)
    stopped = broker.stop()
    print(f"kafka {broker.settings.instance}: {'stopped' if stopped else 'was not running'}")
    return 0


def _broker_status(settings: Settings, args: argparse.Namespace) -> int:
    broker = _broker(settings, args)
    pid = broker.running_pid()
    where = broker.bootstrap
    print(
        f"kafka {broker.settings.instance}: "
        + (f"running (pid {pid}) on {where}" if pid else "not running")
    )
    return 0 if pid else 1


def _broker_run(settings: Settings, args: argparse.Namespace) -> int:
    command = [c for c in args.command if c != "--"] if args.command else []
    if not command:
        print("journeys broker run: give a command after --", file=sys.stderr)
        return 2
    broker = _broker(settings, args)
    if args.fresh:
        broker.wipe()
    started = broker.start()
    env = {**os.environ, "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap}
    env["JOURNEYS_LOCAL_BROKER__INSTANCE"] = broker.settings.instance
    env["JOURNEYS_LOCAL_BROKER__PORT"] = str(broker.settings.port)
    env["JOURNEYS_LOCAL_BROKER__CONTROLLER_PORT"] = str(broker.settings.controller_port)
    child = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue  # the child got the same SIGINT from the terminal; wait for it
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:
            child.kill()
            child.wait()
        if started:
            broker.stop()


def _topics(settings: Settings, _args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics

    created = ensure_topics(settings)
    print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from sinks.clickhouse import connect, migrate

    client = connect(settings.clickhouse_dsn)
    print(f"applied {migrate(client)} statements")
    return 0


def _ddl(_settings: Settings, _args: argparse.Namespace) -> int:
    from sinks.tables import ddl

    print(";\n\n".join(ddl()) + ";")
    return 0


def _process(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics
    from stream_processors.worker import run

    ensure_topics(settings)
    run(settings, args.stage)
    return 0


def _sink(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics
    from schemas.topics import Topics
    from sinks.clickhouse import connect, migrate
    from sinks.runner import TopicSink

    ensure_topics(settings)
    client = connect(settings.clickhouse_dsn)
    migrate(client)
    stop = _stop_flag()
    topic = Topics.from_settings(settings.topics).touchpoints
    sink = TopicSink(settings, client, topic, "touchpoints")
    stats = sink.run(lambda: stop[0], idle_exit_seconds=args.idle_exit)
    print(
        f"sink: {stats.rows:,} rows in {stats.batches:,} batches from {stats.messages:,} messages"
    )
    return 0


def _stop_flag() -> list[bool]:
    stop = [False]

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _publish(settings: Settings, args: argparse.Namespace) -> int:
    from producers.files import publish_file

    return publish_file(settings, args.file)


def _generate(settings: Settings, args: argparse.Namespace) -> int:
    from producers.files import publish_items
    from producers.synthetic import generate

    start = datetime.now(UTC) - timedelta(days=1)
    items = generate(
        args.count, seed=args.seed, invalid_ratio=args.invalid_ratio,
        duplicate_ratio=args.duplicate_ratio, start=start,
    )  # fmt: skip
    publish_items(settings, items, total=args.count)
    return 0


def _report(settings: Settings, _args: argparse.Namespace) -> int:
    from schemas.topics import Topics
    from sinks.clickhouse import connect
    from sinks.report import dead_letter_reasons, render, touchpoint_summary

    summary = touchpoint_summary(connect(settings.clickhouse_dsn))
    topic = Topics.from_settings(settings.topics).dlq_ingest
    summary.dead_letters = dead_letter_reasons(settings.kafka, topic)
    print(render(summary))
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.demo import run_demo

    # SIGTERM (a CI timeout, `kill`) must unwind like Ctrl-C so the demo stops what it started.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    return run_demo(settings, args.count, args.port)


if __name__ == "__main__":
    sys.exit(main())
