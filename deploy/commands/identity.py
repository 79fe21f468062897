"""`journeys identity show ID`: one person's identifiers, merges, moves and refusals.

Read from ClickHouse (`identity_overrides`, `identity_audit`, `touchpoints_latest`), through
the sink's live interface while it runs, so it needs no broker.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    import sys

    from deploy.query.options import QueryError

    try:
        print(render(_read(settings.clickhouse_dsn, args.id)))
    except QueryError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    return 0


# The latest version of each identifier's override; `describe` wants them as the map topic
# had them (identifier, person_id, remapped).
_OVERRIDES = """
SELECT identifier, argMax(person_id, version) AS person_id, argMax(remapped, version) AS remapped
FROM identity_overrides {where} GROUP BY identifier {having}"""
_AUDIT = """
SELECT kind, rule, person_id, old_person_ids, identifiers, event_id, event_time, detail,
       retracted, version
FROM identity_audit FINAL
WHERE person_id = {pid:String} OR has(old_person_ids, {pid:String})
   OR hasAny(identifiers, {members:Array(String)})"""


def _read(dsn: str, query: str) -> PersonView:
    """The person `query` names, from ClickHouse; `QueryError` when nothing is known."""
    from deploy.query.options import QueryError
    from deploy.query.questions import Query
    from deploy.query.reader import ask, open_journeys
    from stream_processors.identity.core.records import person_id

    with open_journeys(dsn) as client:

        def rows(sql: str, **parameters: Any) -> list[dict[str, Any]]:
            answer = ask(client, Query(sql, parameters))
            return [dict(zip(answer.columns, row, strict=True)) for row in answer.rows]

        own = rows(_OVERRIDES.format(where="WHERE identifier = {q:String}", having=""), q=query)
        pid = query
        if ":" in query:
            pid = own[0]["person_id"] if own and own[0]["remapped"] else person_id(query)
        having = "HAVING person_id = {pid:String} AND remapped"
        map_rows = own + rows(_OVERRIDES.format(where="", having=having), pid=pid)
        members = sorted({r["identifier"] for r in map_rows} | ({query} if ":" in query else set()))
        audit = rows(_AUDIT, pid=pid, members=members)
        for row in audit:
            row["event_time"] = row["event_time"].isoformat(sep=" ")
        touched = ask(
            client,
            Query(
                "SELECT count() FROM touchpoints_latest WHERE latest_person_id = {pid:String}",
                {"pid": pid},
            ),
        ).rows[0][0]
    if not audit and not touched and not any(r["remapped"] for r in map_rows):
        raise QueryError(f"unknown person or identifier {query!r}: nothing about it in ClickHouse")
    return describe(query, map_rows, audit)
