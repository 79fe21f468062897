"""`journeys watch`: report consumer groups that fell behind and stopped moving."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from deploy.commands import SubParsers, examples
from schemas.settings import Settings

STAGE_GROUPS = ("ingest", "identity", "journeys", "friction")


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    w = sub.add_parser(
        "watch",
        help="watch every stage's and the sink's consumer group for stalls (/health, /metrics)",
        description="A stalled worker cannot report on itself: this process reads each "
        "group's committed offsets and the committed end of its input with the admin client. "
        "A group with lag whose offsets have not moved for JOURNEYS_WATCH__STALL_AFTER_SECONDS "
        "is stalled: a log line, journeys_watch_stalled{group} = 1, and /health answers 503.",
        epilog=examples("watch", "watch --port 9470", "watch --once --format json"),
    )
    w.add_argument("--host", help="address to bind (default: the setting, 127.0.0.1)")
    w.add_argument("--port", type=int, help="port (default: the setting, 9470)")
    w.add_argument("--once", action="store_true", help="print each group's lag now and exit")
    w.add_argument("--format", choices=["table", "json"], default="table")
    w.set_defaults(func=_watch)


def watched_groups(settings: Settings) -> list[str]:
    if settings.watch.groups is not None:
        return list(settings.watch.groups)
    sink = settings.sink.group_id or settings.topics.group("sink")
    return [settings.topics.group(stage) for stage in STAGE_GROUPS] + [sink]


def _watch(settings: Settings, args: argparse.Namespace) -> int:
    import threading

    import uvicorn

    from deploy.kafka_admin import admin_client, check_kafka
    from deploy.watch.positions import read_positions
    from deploy.watch.service import WatchApp, Watcher, status_json

    check_kafka(settings)
    admin = admin_client(settings)
    groups = watched_groups(settings)
    watcher = Watcher(
        lambda: read_positions(admin, groups),
        settings.watch.stall_after_seconds,
        settings.watch.poll_seconds,
    )
    if args.once:
        statuses = watcher.poll_once()
        if args.format == "json":
            print(json.dumps([status_json(s) for s in statuses]))
        else:
            for status in statuses:
                print(f"{status.group:<40} lag {status.lag:>12,}")
        return 0
    host, port = args.host or settings.watch.host, args.port or settings.watch.port
    config = uvicorn.Config(
        WatchApp(watcher), host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    # Both in threads of their own: SIGTERM and SIGINT end this one cleanly (exit 0), where
    # uvicorn in the main thread would re-raise the signal once it stopped.
    threads = [
        threading.Thread(target=watcher.run, name="watch", daemon=True),
        threading.Thread(target=server.run, name="watch-http", daemon=True),
    ]
    for thread in threads:
        thread.start()
    print(f"watching {len(groups)} groups; /health and /metrics on {host}:{port}", file=sys.stderr)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    while not stop.wait(0.5):
        if not threads[1].is_alive():  # could not bind, say
            return 2
    server.should_exit = True
    watcher.stop()
    threads[1].join(timeout=10)
    return 0
