"""`journeys topics | db | process | sink | report | demo`: running the pipeline."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from types import FrameType

from deploy.commands import SubParsers, examples
from schemas.settings import Settings

_HISTORY_HELP = (
    "the history time domain (imported history): its own topics and consumer groups, "
    "writing to the same tables"
)

_CLUSTER_HELP = (
    "a ClickHouse cluster's name (remote_servers): the schema ON CLUSTER, Replicated and "
    "Distributed (default: the setting clickhouse.cluster; none: one server)"
)


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    t = sub.add_parser(
        "topics",
        help="create the pipeline's topics (idempotent)",
        epilog=examples("topics", "topics --history"),
    )
    t.add_argument("--history", action="store_true", help=_HISTORY_HELP)
    t.set_defaults(func=_topics)
    db = sub.add_parser(
        "db",
        help="ClickHouse schema",
        epilog=examples("db migrate", "db ddl", "db ddl --cluster analytics"),
    )
    dsub = db.add_subparsers(title="actions", metavar="ACTION")
    m = dsub.add_parser(
        "migrate",
        help="create missing tables, add missing columns, recreate views (idempotent)",
        description="Bring ClickHouse to this version's schema. On a cluster (--cluster, or "
        "JOURNEYS_CLICKHOUSE__CLUSTER) every statement runs ON CLUSTER: each table is a "
        "Replicated <table>_local on every shard under a Distributed <table>.",
        epilog=examples("db migrate", "db migrate --cluster analytics"),
    )
    m.add_argument("--cluster", metavar="NAME", help=_CLUSTER_HELP)
    m.set_defaults(func=_migrate)
    d = dsub.add_parser(
        "ddl",
        help="print the CREATE TABLE statements",
        description="Print the statements that make the schema, for one server or (--cluster) "
        "for a cluster: Replicated <table>_local tables, Distributed <table> tables over them "
        "and the views, all ON CLUSTER.",
        epilog=examples("db ddl", "db ddl --cluster analytics"),
    )
    d.add_argument("--cluster", metavar="NAME", help=_CLUSTER_HELP)
    d.set_defaults(func=_ddl)
    serve = dsub.add_parser(
        "serve",
        help="serve the embedded ClickHouse folder over ClickHouse's HTTP interface",
        description="Serve the embedded folder (JOURNEYS_CLICKHOUSE__DSN=chdb:///path) over "
        "ClickHouse's HTTP interface, so BI tools, drivers and other processes query it and "
        "insert into it. The sink does this itself while it runs; use this when nothing else "
        "holds the folder. Users and their limits: JOURNEYS_CLICKHOUSE__HTTP__USERS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples("db serve", "db serve --port 18123", "db serve --host 0.0.0.0"),
    )
    serve.add_argument("--host", help="address to bind (default: the setting, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: the setting, 8123; 0: any free)")
    serve.set_defaults(func=_serve)

    proc = sub.add_parser(
        "process",
        help="run a stream-processing stage as a faust worker",
        description="Run a stage. With --history the same stage runs in the history time "
        "domain: its own topics (prefix + history.) and consumer group, no idle advance; "
        "history's time moves only with history's events and the heartbeats of "
        "`journeys publish --history --close-at TIME` (docs/concepts.md, History).",
        epilog=examples("process ingest", "process friction", "process journeys --history"),
    )
    proc.add_argument(
        "stage",
        choices=["ingest", "identity", "journeys", "friction"],
        help="ingest: raw -> touchpoints (+ dead letters); "
        "identity: touchpoints -> stitched (keyed by person) + identity records; "
        "journeys: stitched -> journeys, stage transitions, drop-offs, retractions, sessions; "
        "friction: stitched, transitions, drop-offs -> friction windows, alerts (+ webhooks)",
    )
    proc.add_argument("--history", action="store_true", help=_HISTORY_HELP)
    proc.set_defaults(func=_process)

    sink = sub.add_parser(
        "sink",
        help="write touchpoints, identity records and journeys into ClickHouse",
        description="Write the pipeline's output topics into ClickHouse, exactly once. Rows "
        "ClickHouse refuses go to the sink's dead-letter topic (dlq.sink); after a fix, "
        "`journeys sink replay-dead-letters` inserts them.",
        epilog=examples(
            "sink", "sink --idle-exit 30", "sink --history", "sink replay-dead-letters"
        ),
    )
    sink.add_argument("--history", action="store_true", help=_HISTORY_HELP)
    sink.add_argument(
        "--idle-exit", type=float, metavar="SECONDS", help="exit after this long without data"
    )
    sink.set_defaults(func=_sink)
    ssub = sink.add_subparsers(title="actions (none: run the sink)", metavar="[ACTION]")
    ssub.add_parser(
        "replay-dead-letters",
        help="insert the rows of the sink's dead-letter topic again, after a fix",
        description="Read the sink's dead-letter topic (dlq.sink) from where the last replay "
        "stopped, insert each record's rows with the record's deduplication token (replaying "
        "twice writes once), and report the counts. A record ClickHouse still refuses stays "
        "uncommitted, with the ones after it, for the next replay; exit code 1 then.",
        epilog=examples("sink replay-dead-letters"),
    ).set_defaults(func=_replay_dead_letters)

    rep = sub.add_parser(
        "report",
        help="summarize what reached ClickHouse and the dead-letter topic",
        epilog=examples("report"),
    )
    rep.set_defaults(func=_report)

    demo = sub.add_parser(
        "demo",
        help="run the whole pipeline on synthetic traffic and show the result",
        epilog=examples("demo", "demo --customers 3000"),
    )
    demo.add_argument(
        "--customers", type=int, default=10_000, help="simulated customers (2 days of them)"
    )
    demo.add_argument("--port", type=int, default=19292, help="port of the demo's own broker")
    demo.set_defaults(func=_demo)


def _domain(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings of the time domain the command runs in: live, or history (`--history`,
    schemas/history.py)."""
    if not getattr(args, "history", False):
        return settings
    from schemas.history import history_settings

    return history_settings(settings)


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics

    settings = _domain(settings, args)
    created = ensure_topics(settings)
    print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


def _cluster(settings: Settings, args: argparse.Namespace) -> str | None:
    """The cluster the schema is on: --cluster, else the setting; None for one server."""
    chosen: str | None = getattr(args, "cluster", None) or settings.clickhouse.cluster
    if chosen is not None:
        from sinks.cluster import cluster_name

        cluster_name(chosen)  # a ValueError names what is wrong
    return chosen


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from sinks.clickhouse import connect, insert_into_cluster, migrate, reader_dsn
    from sinks.cluster import migrate_cluster
    from sinks.definitions import record_definitions

    try:
        cluster = _cluster(settings, args)
    except ValueError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    # Through the live interface when a process serves the folder (the sink, `db serve`).
    client = connect(reader_dsn(settings.clickhouse_dsn))
    if cluster is None:
        print(f"applied {migrate(client)} statements")
    else:
        print(f"applied {migrate_cluster(client, cluster)} statements on cluster {cluster}")
        insert_into_cluster(client)
    record_definitions(client, settings.journeys.definitions)
    return 0


def _ddl(settings: Settings, args: argparse.Namespace) -> int:
    from sinks.cluster import cluster_ddl
    from sinks.tables import ddl

    try:
        cluster = _cluster(settings, args)
    except ValueError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    statements = ddl() if cluster is None else cluster_ddl(cluster)
    print(";\n\n".join(statements) + ";")
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from schemas.settings import ClickHouseHttpSettings
    from sinks.http.discovery import folder_of
    from sinks.http.server import HttpInterface

    folder = folder_of(settings.clickhouse_dsn)
    if folder is None:
        print(
            "journeys: error: JOURNEYS_CLICKHOUSE__DSN names a ClickHouse server, which serves "
            "itself; `db serve` serves an embedded folder (chdb:///path)",
            file=sys.stderr,
        )
        return 2
    chosen = {"host": args.host, "port": args.port}
    # Validated again: a --host reachable from other machines needs passwords on every user.
    http = ClickHouseHttpSettings.model_validate(
        {**settings.clickhouse.http.model_dump(), **{k: v for k, v in chosen.items() if v}}
    )
    try:
        interface = HttpInterface(folder, http)
    except OSError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    stop = _stop_flag()
    interface.start()
    print(f"serving {folder} at {interface.url} (Ctrl-C to stop)", flush=True)
    while not stop[0] and interface.running:
        time.sleep(0.2)
    interface.stop()
    return 0


def _process(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics
    from stream_processors.runtime.worker import run
    from stream_processors.stages import STAGES

    settings = _domain(settings, args)
    ensure_topics(settings)
    run(settings, args.stage, STAGES[args.stage])
    return 0


def _sink(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics
    from schemas.topics import Topics
    from sinks.clickhouse import connect, insert_into_cluster, migrate, reader_dsn
    from sinks.cluster import migrate_cluster
    from sinks.definitions import record_definitions
    from sinks.http.server import serving
    from sinks.runner import TopicSink, pipeline_routes

    # History's sink reads history's topics into the same tables, through the live sink's
    # HTTP interface when that one owns the folder.
    settings = _domain(settings, args)
    ensure_topics(settings)
    # While ClickHouse is away the sink says so every few seconds with what failed; the HTTP
    # client would say it at every attempt of every partition.
    for chatty in ("urllib3.connectionpool", "clickhouse_connect.driver._backend.http_sync"):
        logging.getLogger(chatty).setLevel(logging.ERROR)
    # A folder another process already serves (`db serve`, another sink) is written through
    # its interface; otherwise this sink owns the folder and serves it so others can read.
    dsn = reader_dsn(settings.clickhouse_dsn)
    client = connect(dsn)
    if settings.clickhouse.cluster is None:
        migrate(client)
    else:
        migrate_cluster(client, settings.clickhouse.cluster)
        insert_into_cluster(client)
    record_definitions(client, settings.journeys.definitions)
    stop = _stop_flag()
    routes = pipeline_routes(Topics.from_settings(settings.topics))
    sink = TopicSink(settings, client, routes)
    with serving(dsn, settings.clickhouse.http):
        stats = sink.run(lambda: stop[0], idle_exit_seconds=args.idle_exit)
    dead = (
        f"; {stats.dead_letter_rows:,} rows in {stats.dead_letters:,} pieces dead-lettered"
        if stats.dead_letters
        else ""
    )
    print(
        f"sink: {stats.rows:,} rows in {stats.batches:,} batches from {stats.messages:,} messages"
        + dead
    )
    return 0


def _replay_dead_letters(settings: Settings, _args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics
    from sinks.clickhouse import connect, insert_into_cluster, reader_dsn
    from sinks.replay import ReplayStoppedError, replay_dead_letters

    ensure_topics(settings)
    # Through the live interface when a process serves the folder (a running sink).
    client = connect(reader_dsn(settings.clickhouse_dsn))
    if settings.clickhouse.cluster is not None:
        insert_into_cluster(client)
    try:
        report = replay_dead_letters(settings, client)
    except ReplayStoppedError as exc:
        print(f"journeys: error: {exc}; run it again later", file=sys.stderr)
        return 1
    finally:
        client.close()
    print("\n".join(report.lines()))
    return 1 if report.refused else 0


def _stop_flag() -> list[bool]:
    stop = [False]

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _report(settings: Settings, _args: argparse.Namespace) -> int:
    from deploy.report import report

    return report(settings)


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.demo import run_demo

    # SIGTERM (a CI timeout, `kill`) must unwind like Ctrl-C so the demo stops what it started.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    return run_demo(settings, args.customers, args.port)
