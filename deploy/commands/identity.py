"""`journeys identity show ID`: one person's identifiers, merges, moves and refusals.

Read from Kafka (the `identity-map` and `identity-audit` topics), not ClickHouse, so it works
while the pipeline runs and the sink holds the embedded ClickHouse folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from deploy.commands import EPILOG, SubParsers, examples
from schemas.settings import Settings


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    ident = sub.add_parser(
        "identity",
        help="inspect identity stitching",
        epilog=examples("identity show customer_id:c-42"),
    )
    isub = ident.add_subparsers(title="actions", metavar="ACTION")
    show = isub.add_parser(
        "show",
        help="a person's identifiers, merges and refusals",
        description="Print the person an identifier belongs to (or a person id), with every "
        "identifier stitched to it and the merges, moves and refusals that involved it, as "
        "the identity stage recorded them.",
        epilog="Examples: `journeys identity show customer_id:c-42`, "
        "`journeys identity show anonymous_id:9f1c...`, `journeys identity show <person uuid>`. "
        + EPILOG,
    )
    show.add_argument("id", help="an identifier as TYPE:VALUE, or a person id (UUID)")
    show.set_defaults(func=_show)


@dataclass
class PersonView:
    person_id: str
    identifiers: list[str]
    records: list[Mapping[str, Any]] = field(default_factory=list)


def describe(
    query: str, map_rows: Iterable[Mapping[str, Any]], audit_rows: Iterable[Mapping[str, Any]]
) -> PersonView:
    """Who `query` (an identifier key or a person id) is, from the published map (in order)
    and the audit records. Pure."""
    from stream_processors.identity.core.records import person_id

    remapped: dict[str, str] = {}
    for row in map_rows:
        if row["remapped"]:
            remapped[row["identifier"]] = row["person_id"]
        else:
            remapped.pop(row["identifier"], None)
    audit = list(audit_rows)
    pid = (remapped.get(query) or person_id(query)) if ":" in query else query
    members = {key for key, person in remapped.items() if person == pid}
    mentioned = {key for row in audit for key in row["identifiers"]}
    if ":" in query:
        mentioned.add(query)
    # The identifier that names the person is never remapped; find it by its id.
    members |= {key for key in mentioned if key not in remapped and person_id(key) == pid}
    records = [
        row
        for row in audit
        if row["person_id"] == pid
        or pid in row["old_person_ids"]
        or members.intersection(row["identifiers"])
    ]
    records.sort(key=lambda r: (r["event_time"], r["version"]))
    return PersonView(pid, sorted(members), records)


def render(view: PersonView) -> str:
    lines = [f"person {view.person_id}", f"identifiers ({len(view.identifiers)}):"]
    lines += [f"  {key}" for key in view.identifiers] or ["  (none seen: an unknown id?)"]
    lines.append(f"merges, moves and refusals ({len(view.records)}):")
    for row in view.records:
        what = f"{row['kind']} ({row['rule']})"
        if row["retracted"]:
            what += " RETRACTED"
        ids = ", ".join(row["identifiers"])
        lines.append(f"  {row['event_time']}  {what:<34} {ids}")
        if row["kind"] != "refusal":
            lines.append(f"      {', '.join(row['old_person_ids'])} -> {row['person_id']}")
        if row["detail"]:
            lines.append(f"      {row['detail']}")
        lines.append(f"      event {row['event_id']}")
    if not view.records:
        lines.append("  (none)")
    return "\n".join(lines)


def _show(settings: Settings, args: argparse.Namespace) -> int:
    from deploy.kafka_admin import check_kafka
    from schemas import envelope
    from schemas.topics import Topics
    from stream_processors.runtime.topic_reader import read_to_end

    check_kafka(settings)
    topics = Topics.from_settings(settings.topics)
    map_rows = [
        orjson.loads(m.value())
        for m in read_to_end(settings.kafka, topics.identity_map)
        if m.value() is not None
    ]
    audit_rows = [
        row
        for m in read_to_end(settings.kafka, topics.identity_audit)
        for row in envelope.decode(m.value() or b"{}").events
    ]
    print(render(describe(args.id, map_rows, audit_rows)))
    return 0
