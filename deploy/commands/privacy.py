"""`journeys privacy export|erase|rotate-key`: access and erasure requests for one person, and
the rotation of the key contact details are hashed with.

Both resolve the person through the identity graph as ClickHouse holds it (every identifier,
the persons merged into them) and read ClickHouse through `sinks.clickhouse.reading`, so they
work beside a running sink.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from deploy.commands import EPILOG, SubParsers, examples
from schemas.settings import Settings


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    privacy = sub.add_parser(
        "privacy",
        help="access and erasure requests for one person",
        epilog=examples(
            "privacy export --identifier customer_id:c-42 --format json",
            "privacy erase --identifier email_hash:dev:9f1c...",
            "privacy rotate-key",
        ),
    )
    psub = privacy.add_subparsers(title="actions", metavar="ACTION")
    export = psub.add_parser(
        "export",
        help="write everything held about a person as JSON",
        description="Write every row ClickHouse holds about the person an identifier (or a "
        "person id) names, merged persons included: touchpoints, identity records, journeys, "
        "transitions, drop-offs, retractions, sessions and alerts' example journeys.",
        epilog="Examples: `journeys privacy export --identifier customer_id:c-42 --format json`, "
        "`journeys privacy export --person <uuid> --output person.json`. " + EPILOG,
    )
    _subject(export)
    export.add_argument("--format", choices=["json"], default="json", help="output format")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.set_defaults(func=_export)
    erase = psub.add_parser(
        "erase",
        help="remove a person everywhere and keep them erased",
        description="Remove the person's rows from every ClickHouse table and their examples "
        "from alerts, tombstone their identifiers in identity-map, add their hashed "
        "identifiers to the suppression list (later events of theirs are dropped, replays "
        "included) and write an audit record holding no erased value.",
        epilog="Examples: `journeys privacy erase --identifier customer_id:c-42`, "
        "`journeys privacy erase --person <uuid> --requested-by dpo@example.com`. " + EPILOG,
    )
    _subject(erase)
    erase.add_argument(
        "--requested-by", default=getpass.getuser(), help="who asked (default: the OS user)"
    )
    erase.set_defaults(func=_erase)
    rotate = psub.add_parser(
        "rotate-key",
        help="carry stored contact hashes to the active (rotated) key",
        description="After adding a key that replaces the previous one (JOURNEYS_PII__KEYS, "
        "JOURNEYS_PII__DERIVED_FROM, JOURNEYS_PII__ACTIVE_KEY_ID), publish for every e-mail "
        "and phone hash ClickHouse holds its form under the new key, so a person identified "
        "before and after the rotation stays one person. Run it before the producers switch; "
        "during JOURNEYS_PII__ROTATION_WINDOW_UNTIL the ingest stage does the same for "
        "old-key hashes that still arrive.",
        epilog="Example: `journeys privacy rotate-key`, with JOURNEYS_PII__KEYS set to "
        '\'{"2026a": "...", "2027a": "..."}\', JOURNEYS_PII__DERIVED_FROM to '
        '\'{"2027a": "2026a"}\' and JOURNEYS_PII__ACTIVE_KEY_ID to 2027a. ' + EPILOG,
    )
    rotate.set_defaults(func=_rotate)


def _subject(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--identifier", help="an identifier as TYPE:VALUE")
    group.add_argument("--person", help="a person id (UUID)")


def _subject_of(args: argparse.Namespace) -> str | None:
    if args.identifier is not None:
        return str(args.identifier) if ":" in args.identifier else None
    return str(args.person)


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.privacy.erasure import export
    from deploy.privacy.scope import resolve
    from sinks.clickhouse import reading

    subject = _subject_of(args)
    if subject is None:
        print("journeys: error: --identifier wants TYPE:VALUE", file=sys.stderr)
        return 2
    with reading(settings.clickhouse_dsn) as client:
        held = export(client, resolve(client, subject))
    body = orjson.dumps(held, default=str, option=orjson.OPT_INDENT_2) + b"\n"
    if args.output is None:
        sys.stdout.buffer.write(body)
    else:
        args.output.write_bytes(body)
    return 0


def _erase(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics
    from deploy.privacy.erasure import Request, erase
    from deploy.privacy.scope import resolve
    from sinks.clickhouse import reading

    subject = _subject_of(args)
    if subject is None:
        print("journeys: error: --identifier wants TYPE:VALUE", file=sys.stderr)
        return 2
    ensure_topics(settings)  # a deployment older than the privacy topics
    request = Request(args.requested_by, datetime.now(UTC))
    with reading(settings.clickhouse_dsn) as client:
        audit = erase(settings, client, resolve(client, subject), request)
    print(audit.model_dump_json(indent=2))
    return 0


def _rotate(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import ensure_topics
    from deploy.privacy.rotation import RotationError, rotate
    from sinks.clickhouse import reading

    ensure_topics(settings)
    try:
        with reading(settings.clickhouse_dsn) as client:
            count = rotate(settings, client)
    except RotationError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    print(f"{count} contact hashes carried to key {settings.pii.active_key_id}")
    return 0
