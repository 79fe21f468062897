"""The analysts' views (sinks/views.py) on the embedded engine, over the hand-made rows of
`analyst_rows`, whose answers are worked out by hand in the comments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import migrate, session

from .analyst_rows import at, fill, naive


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("analyst-views") / "clickhouse"
    with session(f"chdb://{path}") as client:
        migrate(client)
        fill(client)
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
