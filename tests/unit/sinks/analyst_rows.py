"""Hand-made rows for the analysts' views, whose answers the tests work out by hand.

Two purchase journeys on 2026-01-05: j1 (person p1) converts through all five stages, starting
on web and finishing on app; j2 (person p2) starts on app and drops off at cart, reached on web,
when the cart's 24h limit passes. j3 was merged (it lives on in another journey: not counted);
j4 is p1's open support journey. p2's touchpoints switch channel four times; p2 met friction
in an app session that ended at 10:31 and stated friction at 11:05; the identity stage merged
p2old into p2; an alert names p2 among its examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from schemas.settings import SHIPPED_DEFINITIONS
from sinks.definitions import record_definitions


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def naive(when: datetime) -> datetime:
    """As clickhouse-connect returns a UTC time."""
    return when.replace(tzinfo=None)


def insert(client: Client, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Each row with its own columns; the table's defaults fill the rest."""
    for row in rows:
        client.insert(table, [list(row.values())], column_names=list(row))


def journey(
    jid: str, person: str, status: str, stages: list[tuple[str, datetime, str]], **more: Any
) -> dict[str, Any]:
    return {
        "journey_id": jid,
        "definition_id": more.get("definition_id", "purchase"),
        "definition_version": 1,
        "person_id": person,
        "status": status,
        "stage": stages[-1][0],
        "started_at": stages[0][1],
        "ended_at": more.get("ended_at"),
        "stages": stages,
        "channels": sorted({c for _s, _t, c in stages}),
        "version": 1,
    }


JOURNEYS = [
    journey(
        "j1",
        "p1",
        "converted",
        [
            ("discover", at(5, 10), "web"),
            ("consider", at(5, 11), "web"),
            ("cart", at(5, 12), "app"),
            ("checkout", at(5, 12, 30), "app"),
            ("purchase", at(5, 12, 40), "app"),
        ],
        ended_at=at(5, 12, 40),
    ),
    journey(
        "j2",
        "p2",
        "dropped_off",
        [
            ("discover", at(5, 9), "app"),
            ("consider", at(5, 10, 30), "app"),
            ("cart", at(5, 11), "web"),
        ],
        ended_at=at(6, 11),
    ),
    journey("j3", "p3", "merged", [("discover", at(5, 8), "web")]),
    journey("j4", "p1", "open", [("issue", at(6, 8), "web")], definition_id="support"),
]

# p2's touchpoints: (label, time, channel, event type, touchpoint, stated friction)
P2_TOUCHPOINTS = [
    ("t0", at(5, 8), "web", "home_view", "/", False),  # before j2 started
    ("t1", at(5, 9), "app", "home_view", "home", False),
    ("t2", at(5, 10, 30), "app", "product_view", "product", False),
    ("t3", at(5, 10, 31), "app", "product_view", "product", False),
    ("t4", at(5, 11), "web", "add_to_cart", "/cart", False),
    ("t5", at(5, 11, 5), "web", "page_view", "/cart", True),
    ("t6", at(5, 11, 10), "call_center", "contact_queued", "queue:support", False),
    ("t7", at(6, 9), "web", "help_view", "/help", False),
    ("t8", at(6, 12), "web", "home_view", "/", False),  # after j2 dropped off
]


def touchpoint_row(n: int, spec: tuple[str, datetime, str, str, str, bool]) -> dict[str, Any]:
    label, when, channel, event_type, touchpoint, friction = spec
    return {
        "event_id": UUID(int=n + 1),
        "channel": channel,
        "source": f"{channel}-source",
        "event_type": event_type,
        "occurred_at": when,
        "received_at": when,
        "identity": (None, "a2", None, None, None, None),
        "touchpoint": touchpoint,
        "friction": [("error", label, None)] if friction else [],
        "person_id": "p2",
        "person_key": "anonymous_id:a2",
    }


def dropoff(version: int, retracted: bool, **fields: Any) -> dict[str, Any]:
    return {
        "definition_id": "purchase",
        "definition_version": 1,
        "reason": "time_limit",
        "version": version,
        "retracted": retracted,
        **fields,
    }


def fill(client: Client) -> None:
    """Write the rows into a migrated database."""
    record_definitions(client, sorted(SHIPPED_DEFINITIONS.glob("*.toml")))
    insert(client, "journeys", JOURNEYS)
    insert(client, "touchpoints", [touchpoint_row(n, t) for n, t in enumerate(P2_TOUCHPOINTS)])
    common = {"journey_id": "j2", "person_id": "p2", "stage": "cart"}
    drop = {"stage_entered_at": at(5, 11), "dropped_at": at(6, 11), "last_channel": "web"}
    insert(
        client,
        "dropoffs",
        [
            dropoff(1, False, dropoff_id="d2", **common, **drop),
            # j1's withdrawn drop-off: a newer version marks it retracted.
            dropoff(1, False, dropoff_id="d1", journey_id="j1", person_id="p1", stage="checkout"),
            dropoff(2, True, dropoff_id="d1", journey_id="j1", person_id="p1", stage="checkout"),
        ],
    )
    # p2 met friction in an app session that ended at 10:31 (the mapping's count).
    session_row = {"session_id": "s1", "person_id": "p2", "channel": "app"}
    insert(
        client,
        "sessions",
        [{**session_row, "started_at": at(5, 9), "ended_at": at(5, 10, 31), "friction": 1}],
    )
    audit = {"record_id": UUID(int=99), "kind": "merge", "rule": "link", "person_id": "p2"}
    insert(
        client,
        "identity_audit",
        [
            {
                **audit,
                "old_person_ids": ["p2old"],
                "identifiers": ["anonymous_id:a2"],
                "event_time": at(5, 8, 30),
                "version": 1,
            }
        ],
    )
    example = ("p2", at(5, 11, 5).timestamp(), "web", "/cart", "error", "j2")
    alert = {"incident_id": "a1", "version": 1, "status": "firing", "kind": "friction_spike"}
    insert(client, "alerts", [{**alert, "series_name": "web:/cart", "examples": [example]}])
