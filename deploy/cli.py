"""`journeys`: the one command for running, feeding and inspecting the pipeline.

Settings come from JOURNEYS_* environment variables and an optional TOML file
(JOURNEYS_SETTINGS_FILE); see `schemas/settings.py`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from deploy import logs
from deploy.commands import (
    alerts,
    broker,
    definitions,
    examples,
    feed,
    identity,
    pipeline,
    privacy,
    query,
    ui,
    watch,
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
    from schemas.settings import SettingsError, load_settings
    from sinks.clickhouse import ClickHouseUnreachableError
    from stream_processors.runtime.worker_id import DuplicateWorkerError

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"journeys: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if settings.clickhouse.relative_folder:
        logging.getLogger("journeys").info(
            "JOURNEYS_CLICKHOUSE__DSN %s is relative: ClickHouse is at %s",
            settings.clickhouse.relative_folder,
            settings.clickhouse_dsn,
        )
    try:
        return int(args.func(settings, args) or 0)
    except (
        KafkaUnreachableError,
        ClickHouseUnreachableError,
        BrokerError,
        PublishError,
        DuplicateWorkerError,
    ) as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="journeys",
        description="Customer journeys from web, app, call center and store events, "
        "stitched and watched in the stream, stored in ClickHouse.",
        epilog=examples("demo --customers 3000", "process ingest", "report"),
    )
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    broker.register(sub)
    pipeline.register(sub)
    feed.register(sub)
    identity.register(sub)
    privacy.register(sub)
    definitions.register(sub)
    alerts.register(sub)
    query.register(sub)
    ui.register(sub)
    watch.register(sub)
    return p


if __name__ == "__main__":
    sys.exit(main())
