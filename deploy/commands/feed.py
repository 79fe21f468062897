"""`journeys publish | ingest | schema | generate | simulate | collector`: feeding `raw`."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from deploy.commands import SubParsers, examples
from schemas.settings import Settings

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    pub = sub.add_parser(
        "publish",
        help="publish touchpoints from a JSON Lines file to raw",
        description="Publish touchpoints to raw, as live traffic. With --history they are "
        "history: flagged backfill and published to the history domain's raw, which "
        "`journeys process STAGE --history` and `journeys sink --history` read, so old events "
        "neither move live event time nor arrive late in it; close history's time with "
        "--close-at (docs/concepts.md, History).",
        epilog=examples(
            "publish events.jsonl",
            "publish events.jsonl --close-at 2025-03-03T00:00:00+00:00",
            "publish --history old.jsonl --close-at 2025-03-03T00:00:00+00:00",
        ),
    )
    pub.add_argument("file", type=Path, help="one event per line ('-' for stdin)")
    pub.add_argument(
        "--close-at",
        type=datetime.fromisoformat,
        metavar="TIME",
        help="then send a watermark heartbeat at TIME (ISO 8601 with offset) to every "
        "partition: a replay closes its own event time, as `journeys simulate` does",
    )
    pub.add_argument(
        "--history",
        action="store_true",
        help="the file is history: publish it (flagged backfill) to the history domain",
    )
    pub.set_defaults(func=_publish)
    _add_ingest(sub)
    _add_schema(sub)
    _collector_parser(sub)

    gen = sub.add_parser(
        "generate",
        help="publish synthetic multi-channel touchpoints to raw",
        epilog=examples("generate --count 1000", "generate --invalid-ratio 0.05"),
    )
    gen.add_argument("--count", type=int, default=10_000)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--invalid-ratio", type=float, default=0.0)
    gen.add_argument("--duplicate-ratio", type=float, default=0.0)
    gen.set_defaults(func=_generate)

    sim = sub.add_parser(
        "simulate",
        help="publish simulated customers' purchase and support journeys (with ground truth)",
        description="Customers walk through purchase and support journeys across web, app, "
        "call center and store over simulated days; deterministic for a seed. Ends with "
        "watermark heartbeats past the last deadline, and writes the ground truth.",
        epilog="Incidents: 'web:/checkout errors x8 @30m for 15m', "
        "'call_center:queue:support waits x5 @60m for 20m', 'app:payment down @90m for 10m'. "
        + examples(
            "simulate --customers 500 --days 1",
            "simulate --incident 'web:/checkout errors x8 @30m for 15m' --truth truth.json",
        ),
    )
    sim.add_argument("--customers", type=int, default=1_000)
    sim.add_argument("--days", type=float, default=2.0, help="simulated days")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--rate", type=float, help="events/s (default: as fast as possible)")
    sim.add_argument("--incident", action="append", default=[], help="scheduled incident")
    sim.add_argument("--truth", type=Path, help="write the ground truth (JSON) here")
    sim.add_argument(
        "--write",
        type=Path,
        metavar="FILE",
        help="write the events to a JSON Lines file instead of publishing them; replay it "
        "with `journeys publish FILE --close-at TIME` (TIME is printed)",
    )
    sim.set_defaults(func=_simulate)


def _publish(settings: Settings, args: argparse.Namespace) -> int:
    from producers.files import publish_file
    from producers.simulator.runner import send_heartbeats

    if args.close_at is not None and args.close_at.tzinfo is None:
        print("journeys publish: --close-at needs a UTC offset, e.g. +00:00", file=sys.stderr)
        return 2
    if args.history:
        from deploy.kafka_admin import ensure_topics
        from schemas.history import history_settings

        settings = history_settings(settings)
        ensure_topics(settings)
    status = publish_file(settings, args.file, backfill=args.history)
    if args.close_at is not None:
        send_heartbeats(settings, int(args.close_at.timestamp() * 1000))
        print(f"event time closed at {args.close_at.isoformat()}", file=sys.stderr)
    return status


def _add_ingest(sub: SubParsers[argparse.ArgumentParser]) -> None:
    ingest = sub.add_parser(
        "ingest",
        help="publish touchpoints from call-center or store export files to raw",
        epilog=examples(
            "ingest call-center deploy/examples/contacts.csv",
            "ingest store deploy/examples/pos.jsonl",
        ),
    )
    isub = ingest.add_subparsers(title="sources", metavar="SOURCE")
    for name, mapping, what, example in (
        ("call-center", "contact_center.toml", "contact-center contact records", "contacts.csv"),
        ("store", "pos.toml", "point-of-sale transactions", "pos.jsonl"),
    ):
        text = f"publish {what} (CSV or JSON Lines) as touchpoints to raw"
        i = isub.add_parser(
            name,
            help=text,
            description=f"{text}. Bad lines are reported as FILE:LINE: reason and the rest "
            "is published; exit code 1 if any line was rejected, 2 if the file or the mapping "
            "is unusable. Re-ingesting a file publishes the same event ids.",
            epilog=examples(
                f"ingest {name} deploy/examples/{example}",
                f"ingest {name} {example} --mapping my_{mapping}",
            ),
        )
        i.add_argument("file", type=Path, help="the export file")
        i.add_argument(
            "--mapping",
            type=Path,
            default=MAPPINGS / mapping,
            help="column mapping (TOML, see deploy/mappings/README.md); default: %(default)s",
        )
        i.set_defaults(func=_ingest, kind=name)


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    from producers.adapters.errors import AdapterError
    from producers.adapters.runner import run_ingest
    from schemas.config_files import ConfigFileError

    try:
        return run_ingest(settings, args.kind, args.file, args.mapping)
    except (AdapterError, ConfigFileError, OSError) as exc:
        print(f"journeys ingest: {exc}", file=sys.stderr)
        return 2


def _add_schema(sub: SubParsers[argparse.ArgumentParser]) -> None:
    schema = sub.add_parser(
        "schema", help="the topic contracts as JSON Schema", epilog=examples("schema export")
    )
    ssub = schema.add_subparsers(title="actions", metavar="ACTION")
    text = "write JSON Schema files of the touchpoint and dead-letter contracts"
    export = ssub.add_parser(
        "export",
        help=text,
        description=f"{text}; schemas/COMPATIBILITY.md says when a change needs a new version.",
        epilog=examples("schema export", "schema export --out /tmp/schemas"),
    )
    export.add_argument("--out", type=Path, help="folder to write to (default: schemas/json/)")
    export.set_defaults(func=_schema_export)


def _schema_export(_settings: Settings, args: argparse.Namespace) -> int:
    from schemas.contracts import SCHEMA_DIR, export

    for path in export(args.out or SCHEMA_DIR):
        print(f"wrote {path}")
    return 0


def _generate(settings: Settings, args: argparse.Namespace) -> int:
    from producers.files import publish_items
    from producers.synthetic import generate

    start = datetime.now(UTC) - timedelta(days=1)
    items = generate(
        args.count,
        seed=args.seed,
        invalid_ratio=args.invalid_ratio,
        duplicate_ratio=args.duplicate_ratio,
        start=start,
    )
    publish_items(settings, items, total=args.count)
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from producers.simulator.config import Incident, SimConfig
    from producers.simulator.runner import simulate

    try:
        config = SimConfig(
            customers=args.customers,
            days=args.days,
            seed=args.seed,
            incidents=tuple(Incident.parse(spec) for spec in args.incident),
        )
    except ValueError as exc:  # pydantic's ValidationError is one too
        print(f"journeys simulate: {exc}", file=sys.stderr)
        return 2
    truth = simulate(settings, config, args.truth, args.rate, write=args.write)
    if args.write:
        print(
            f"wrote {args.write}; replay: journeys publish {args.write} "
            f"--close-at {truth.closes_at.isoformat()}"
        )
    outcomes = Counter(j.outcome for j in truth.journeys)
    print(
        f"simulated {truth.events:,} events, {len(truth.persons):,} persons, "
        f"{len(truth.journeys):,} journeys ({dict(outcomes)})"
    )
    return 0


def _collector_parser(sub: SubParsers[argparse.ArgumentParser]) -> None:
    col = sub.add_parser(
        "collector",
        help="serve Segment's HTTP tracking API (also as RudderStack's data plane) into raw",
        description="HTTP collector: existing Segment and RudderStack SDKs send here by changing "
        "only their endpoint (POST /v1/track, /v1/page, /v1/batch, ...). Write keys and their "
        "sources come from the collector settings (JOURNEYS_COLLECTOR__SOURCES). "
        "/health/live, /health/ready and /metrics answer on the admin port "
        "(JOURNEYS_COLLECTOR__ADMIN_PORT, default 9468). SIGTERM drains and exits 0.",
        epilog=examples(
            "collector", "collector --host 127.0.0.1 --port 8088", "collector --workers 2"
        ),
    )
    col.add_argument("--host", help="address to listen on (default: the collector.host setting)")
    col.add_argument(
        "--port", type=int, help="port to listen on (default: the collector.port setting)"
    )
    col.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="collector processes serving the port together, each with its own Kafka "
        "producer; their metrics add up (default: the collector.workers setting)",
    )
    # A worker started by `--workers N`: binds its ports beside its siblings.
    col.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    col.set_defaults(func=_collector)


def _collector(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics
    from producers.collector.server import run_worker, serve
    from schemas.history import history_settings

    host = args.host or settings.collector.host
    port = settings.collector.port if args.port is None else args.port
    if args.worker:
        return run_worker(settings, host, port, shared=True)
    if args.workers is not None and args.workers < 1:
        print("journeys collector: --workers must be at least 1", file=sys.stderr)
        return 2
    ensure_topics(settings)
    ensure_topics(history_settings(settings))  # `/v1/import` publishes to history's raw
    return serve(settings, host, port, args.workers)
