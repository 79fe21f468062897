"""The analysts' views (sinks/views.py) on the embedded engine, over a few hand-made rows whose
answers are worked out by hand in the comments.

Two purchase journeys on 2026-01-05: j1 (person p1) converts through all five stages, starting
on web and finishing on app; j2 (person p2) starts on app and drops off at cart, reached on web,
when the cart's 24h limit passes. j3 was merged (it lives on in another journey: not counted);
j4 is p1's open support journey. p2's touchpoints switch channel four times.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from clickhouse_connect.driver.client import Client

from schemas.settings import SHIPPED_DEFINITIONS
from sinks.clickhouse import migrate, session
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


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("analyst-views") / "clickhouse"
    with session(f"chdb://{path}") as client:
        migrate(client)
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
                dropoff(
                    1, False, dropoff_id="d1", journey_id="j1", person_id="p1", stage="checkout"
                ),
                dropoff(
                    2, True, dropoff_id="d1", journey_id="j1", person_id="p1", stage="checkout"
                ),
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
        yield client


def rows(client: Client, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql).result_rows]


def test_journey_definitions_hold_stage_order_and_limits(ch: Client) -> None:
    got = rows(
        ch,
        "SELECT stage_index, stage, entry, success, time_limit_seconds FROM journey_definitions "
        "FINAL WHERE definition_id = 'purchase' ORDER BY stage_index",
    )
    assert got == [
        (1, "discover", True, False, 24 * 3600),
        (2, "consider", False, False, 48 * 3600),
        (3, "cart", False, False, 24 * 3600),
        (4, "checkout", False, False, 3600),
        (5, "purchase", False, True, None),
    ]


def test_funnel_counts_journeys_per_stage_channel_and_first_channel(ch: Client) -> None:
    got = rows(
        ch,
        "SELECT stage_index, stage, first_channel, stage_channel, journeys, converted, "
        "dropped_here FROM funnel_daily WHERE definition_id = 'purchase' AND day = '2026-01-05' "
        "ORDER BY stage_index, first_channel",
    )
    # j3 was merged: not counted. j2 (first channel app) reached cart on web and dropped there.
    assert got == [
        (1, "discover", "app", "app", 1, 0, 0),
        (1, "discover", "web", "web", 1, 1, 0),
        (2, "consider", "app", "app", 1, 0, 0),
        (2, "consider", "web", "web", 1, 1, 0),
        (3, "cart", "app", "web", 1, 0, 1),
        (3, "cart", "web", "app", 1, 1, 0),
        (4, "checkout", "web", "app", 1, 1, 0),
        (5, "purchase", "web", "app", 1, 1, 0),
    ]
    assert rows(ch, "SELECT stage, journeys FROM funnel_daily WHERE definition_id = 'support'") == [
        ("issue", 1)
    ]


def test_time_between_stages(ch: Client) -> None:
    got = rows(
        ch,
        "SELECT from_stage, to_stage, journeys, mean_minutes FROM time_between_stages "
        "WHERE definition_id = 'purchase' ORDER BY stage_index",
    )
    # discover->consider: j1 60 min, j2 90 min; consider->cart: j1 60, j2 30.
    assert got == [
        ("discover", "consider", 2, 75.0),
        ("consider", "cart", 2, 45.0),
        ("cart", "checkout", 1, 30.0),
        ("checkout", "purchase", 1, 10.0),
    ]


def test_dropoff_paths_keep_the_last_five_touchpoints_before_the_drop(ch: Client) -> None:
    got = rows(ch, "SELECT dropoff_id, stage, stage_channel, person_id, path FROM dropoff_paths")
    # d1 was retracted. j2 ran from 09:00 on the 5th to the drop at 11:00 on the 6th: t1..t7,
    # of which the last five are t3..t7 (t0 came before the journey, t8 after the drop).
    assert got == [
        (
            "d2",
            "cart",
            "web",
            "p2",
            [
                "app:product_view",
                "web:add_to_cart",
                "web:page_view",
                "call_center:contact_queued",
                "web:help_view",
            ],
        )
    ]


def test_channel_switches_and_the_friction_before_them(ch: Client) -> None:
    got = rows(
        ch,
        "SELECT from_channel, to_channel, switched_at, gap_ms, after_friction "
        "FROM channel_switches WHERE person_id = 'p2' ORDER BY switched_at",
    )
    assert got == [
        # nothing before: no friction
        ("web", "app", naive(at(5, 9)), 3600_000, False),
        # the app session with friction ended at 10:31, 29 minutes before
        ("app", "web", naive(at(5, 11)), 29 * 60_000, True),
        # t5 stated friction at 11:05, 5 minutes before
        ("web", "call_center", naive(at(5, 11, 10)), 5 * 60_000, True),
        # the next morning: every friction is hours old
        ("call_center", "web", naive(at(6, 9)), (21 * 60 + 50) * 60_000, False),
    ]


def test_person_timeline_puts_everything_about_a_person_in_time_order(ch: Client) -> None:
    got = rows(
        ch,
        "SELECT at, kind, channel, what FROM person_timeline WHERE person_id = 'p2' "
        "ORDER BY at, kind",
    )
    kinds = [kind for _at, kind, _channel, _what in got]
    # 9 touchpoints, the merge, 3 stages reached, the drop-off and j2's outcome, the alert
    assert sorted(kinds) == sorted(
        ["touchpoint"] * 9 + ["identity"] + ["stage"] * 3 + ["dropoff", "journey", "alert"]
    )
    assert got[0] == (naive(at(5, 8)), "touchpoint", "web", "home_view")
    assert got[1] == (naive(at(5, 8, 30)), "identity", "", "merge (link)")
    assert (naive(at(5, 11, 5)), "alert", "web", "friction_spike firing: web:/cart") in got
    assert (naive(at(6, 11)), "dropoff", "web", "purchase: dropped off at cart (time_limit)") in got
    identifiers = rows(
        ch, "SELECT DISTINCT identifiers FROM person_timeline WHERE kind = 'touchpoint'"
    )
    assert identifiers == [(["anonymous_id:a2"],)]
    # the merged-away person id finds the merge too
    assert rows(ch, "SELECT kind FROM person_timeline WHERE person_id = 'p2old'") == [("identity",)]
