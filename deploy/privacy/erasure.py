"""Export and erasure of one person's data (`journeys privacy export|erase`).

The scope (`deploy/privacy/scope.py`) decides whom; this module reads or removes their rows in
every ClickHouse table, their examples in alerts, their keys in the compacted `identity-map`
and `identity-key-aliases` topics, and adds them to the suppression list, before anything
else, so that no event of theirs is stored again while the rows are removed. Rows are removed
with lightweight `DELETE` (chDB and ClickHouse support it on these ReplacingMergeTree tables):
the rows disappear from every query at once, and parts are rewritten by later merges.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.cc_sqlalchemy.dialect import ClickHouseDialect
from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer
from sqlalchemy.schema import CreateTable

from deploy.privacy.scope import Scope
from producers.pii import derive, hash_with
from schemas.privacy import PERSON_PREFIX, ErasureAudit, Suppression
from schemas.settings import Settings
from schemas.topics import Topics
from sinks.tables import privacy_audit, privacy_suppressions
from stream_processors.privacy.core.rotation import CONTACT_FIELDS

_PERSON = "person_id IN {p:Array(String)}"
# Where each table names the person: by person id, or by identifier for the identity tables.
WHERE: dict[str, str] = {
    "touchpoints": f"{_PERSON} OR person_key IN {{i:Array(String)}}",
    "identity_links": _PERSON,
    "identity_overrides": f"{_PERSON} OR identifier IN {{i:Array(String)}}",
    "identity_audit": f"{_PERSON} OR hasAny(old_person_ids, {{p:Array(String)}}) "
    "OR hasAny(identifiers, {i:Array(String)})",
    "journeys": _PERSON,
    "journey_transitions": _PERSON,
    "dropoffs": _PERSON,
    "journey_retractions": _PERSON,
    "sessions": _PERSON,
}
_THEIRS = "arrayExists(e -> has({p:Array(String)}, tupleElement(e, 'person_id')), examples)"
_OTHERS = "arrayFilter(e -> NOT has({p:Array(String)}, tupleElement(e, 'person_id')), examples)"


def _parameters(scope: Scope) -> dict[str, Any]:
    return {"p": list(scope.persons), "i": list(scope.identifiers)}


def export(client: Client, scope: Scope) -> dict[str, Any]:
    """Everything ClickHouse holds about the scope's persons: each table's rows, and the
    alerts' example journeys that are theirs."""
    params = _parameters(scope)
    tables = {
        table: _rows(client, f"SELECT * FROM {table} WHERE {where}", params)
        for table, where in WHERE.items()
    }
    examples = _rows(
        client,
        f"SELECT incident_id, version, arrayJoin(examples) AS example FROM alerts WHERE {_THEIRS}",
        params,
    )
    theirs = [row for row in examples if row["example"]["person_id"] in scope.persons]
    return {
        "subject": scope.subject,
        "persons": list(scope.persons),
        "identifiers": list(scope.identifiers),
        "tables": tables,
        "alert_examples": theirs,
    }


def _rows(client: Client, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=dict(params))
    names = result.column_names
    return [_plain(dict(zip(names, row, strict=True))) for row in result.result_rows]


def _plain(value: Any) -> Any:
    """A named tuple column as a dict, recursively (clickhouse-connect returns dicts for named
    tuples already, tuples for the rest)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def remove_rows(client: Client, scope: Scope) -> tuple[dict[str, int], int]:
    """Delete the scope's rows from every table and their examples from alerts; the rows
    removed by table, and the examples removed."""
    params = _parameters(scope)
    removed: dict[str, int] = {}
    for table, where in WHERE.items():
        count = client.query(f"SELECT count() FROM {table} WHERE {where}", parameters=params)
        removed[table] = int(count.result_rows[0][0])
        if removed[table]:
            client.command(f"DELETE FROM {table} WHERE {where}", parameters=params)
    examples = client.query(
        f"SELECT sum(length(examples) - length({_OTHERS})) FROM alerts WHERE {_THEIRS}",
        parameters=params,
    ).result_rows[0][0]
    if examples:
        # No lightweight UPDATE here: a mutation, waited for so the command reports it done.
        client.command(
            f"ALTER TABLE alerts UPDATE examples = {_OTHERS} WHERE {_THEIRS}",
            parameters=params,
            settings={"mutations_sync": 2},
        )
    return removed, int(examples or 0)


@dataclass(frozen=True)
class Request:
    """Who asked for an erasure, and when (given: the command reads the clock)."""

    requested_by: str
    requested_at: datetime
    request_id: str = ""

    def id(self) -> str:
        return self.request_id or str(uuid.uuid4())


def rotated_forms(settings: Settings, identifiers: Iterable[str]) -> list[str]:
    """The forms the contact identifiers among `identifiers` take under every key rotated from
    theirs: the keys of their aliases on `identity-key-aliases`, and what a producer using
    such a key sends. Pure."""
    pii = settings.pii
    found = set()
    for key in identifiers:
        name, _, value = key.partition(":")
        if name in CONTACT_FIELDS:
            for key_id in pii.keys:
                new = derive(pii, value, key_id)
                if new is not None and new != value:
                    found.add(f"{name}:{new}")
    return sorted(found)


def suppressions(settings: Settings, scope: Scope) -> list[str]:
    """The hashes that keep the scope erased: each identifier key, its rotated forms, and
    each `person:<id>`."""
    pii = settings.pii
    values = [
        *scope.identifiers,
        *rotated_forms(settings, scope.identifiers),
        *(f"{PERSON_PREFIX}{p}" for p in scope.persons),
    ]
    return [hash_with(pii, pii.active_key_id, v) for v in values]


def erase(settings: Settings, client: Client, scope: Scope, request: Request) -> ErasureAudit:
    """Erase the scope everywhere; the audit record (also written to ClickHouse and Kafka)."""
    topics = Topics.from_settings(settings.topics)
    request_id = request.id()
    at = request.requested_at
    hashes = suppressions(settings, scope)
    for table in (privacy_suppressions, privacy_audit):  # a database older than them
        client.command(
            str(CreateTable(table, if_not_exists=True).compile(dialect=ClickHouseDialect()))
        )
    producer = Producer({**settings.kafka.as_librdkafka_dict(), "enable.idempotence": True})
    for hashed in hashes:
        record = Suppression(hash=hashed, request_id=request_id, erased_at=at)
        producer.produce(topics.privacy_suppressions, record.model_dump_json().encode(), hashed)
    producer.flush(30)
    client.insert(
        "privacy_suppressions",
        [[h, request_id, at] for h in hashes],
        column_names=["hash", "request_id", "erased_at"],
    )
    for key in scope.identifiers:
        producer.produce(topics.identity_map, None, key)
    aliased = rotated_forms(settings, scope.identifiers)
    for key in aliased:
        producer.produce(topics.identity_key_aliases, None, key)
    removed, examples = remove_rows(client, scope)
    pii = settings.pii
    audit = ErasureAudit(
        request_id=request_id,
        requested_by=request.requested_by,
        requested_at=at,
        subject_hash=hash_with(pii, pii.active_key_id, scope.subject),
        persons=len(scope.persons),
        identifiers=len(scope.identifiers),
        removed=removed,
        alerts_examples=examples,
        tombstones={
            topics.identity_map: len(scope.identifiers),
            topics.identity_key_aliases: len(aliased),
        },
        suppressed=len(hashes),
    )
    producer.produce(topics.privacy_audit, audit.model_dump_json().encode(), request_id)
    if producer.flush(30):
        raise RuntimeError("Kafka did not take the erasure's records within 30 s")
    client.insert(
        "privacy_audit",
        [list(audit.model_dump().values())],
        column_names=list(ErasureAudit.model_fields),
    )
    return audit
