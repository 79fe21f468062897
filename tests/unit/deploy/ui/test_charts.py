"""What each chart of the page draws, from answers made by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from deploy.query.answers import Answer
from deploy.ui import charts


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 1, day, hour)


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (1, timedelta(hours=1)),
        (3, timedelta(hours=1)),
        (7, timedelta(hours=6)),
        (60, timedelta(days=1)),
    ],
)
def test_the_trend_bucket_follows_the_range(days: int, bucket: timedelta) -> None:
    assert charts.bucket_for(at(1, 0), at(1, 0) + timedelta(days=days)) == bucket


def test_the_funnel_has_a_bar_per_first_channel_and_stage_in_stage_order() -> None:
    answer = Answer(
        ["definition", "stage", "first_channel", "journeys"],
        [
            ("purchase", "cart", "web", 3),
            ("purchase", "discover", "web", 10),
            ("purchase", "discover", "app", 4),
            ("purchase", "unlisted", "app", 1),
        ],
    )
    got = charts.funnel(answer, ["discover", "consider", "cart"])
    assert got == {
        "stages": ["discover", "consider", "cart", "unlisted"],
        "series": [{"name": "app", "data": [4, 0, 0, 1]}, {"name": "web", "data": [10, 0, 3, 0]}],
    }


def test_paths_become_a_sankey_without_cycles_ending_at_the_stage_dropped_at() -> None:
    answer = Answer(
        ["definition", "stage", "path", "dropped", "share"],
        [
            ("purchase", "cart", "web:home_view > web:home_view > web:add_to_cart", 3, 0.6),
            ("purchase", "cart", "app:add_to_cart", 2, 0.4),
            ("purchase", "discover", "", 1, 1.0),
        ],
    )
    got = charts.paths(answer)
    links = {(link["source"], link["target"]): link["value"] for link in got["links"]}
    # The same step twice in a path is two nodes: by how far it is from the drop-off.
    assert links == {
        ("web:home_view #3", "web:home_view #2"): 3,
        ("web:home_view #2", "web:add_to_cart #1"): 3,
        ("web:add_to_cart #1", "dropped at cart"): 3,
        ("app:add_to_cart #1", "dropped at cart"): 2,
        ("(no touchpoint) #1", "dropped at discover"): 1,
    }
    shown = {node["name"]: (node["step"], node["depth"]) for node in got["nodes"]}
    assert shown["web:home_view #3"] == ("web:home_view", 3)
    assert shown["dropped at cart"] == ("dropped at cart", 0)


def test_the_trend_fills_the_buckets_between_the_first_and_the_last() -> None:
    answer = Answer(
        ["bucket", "stage", "dropped"],
        [(at(5, 10), "cart", 2), (at(5, 13), "cart", 1), (at(5, 13), "discover", 4)],
    )
    got = charts.trend(answer, ["discover", "cart"], timedelta(hours=1))
    assert got["buckets"] == [at(5, 10), at(5, 11), at(5, 12), at(5, 13)]
    assert got["series"] == [
        {"name": "discover", "data": [0, 0, 0, 4]},
        {"name": "cart", "data": [2, 0, 0, 1]},
    ]
    empty = charts.trend(Answer(["bucket", "stage", "dropped"], []), [], timedelta(hours=1))
    assert empty == {"buckets": [], "series": []}


def test_an_alert_runs_to_its_resolution_or_its_last_window() -> None:
    columns = [
        "incident_id",
        "status",
        "severity",
        "series_name",
        "place",
        "started_at",
        "last_window_end",
        "resolved_at",
        "explanation",
    ]
    answer = Answer(
        columns,
        [
            ("a1", "firing", "critical", "error", "web /cart", at(5, 10), at(5, 11), None, "x"),
            ("a2", "resolved", "warning", "entries", "", at(5, 9), at(5, 9), at(5, 12), "y"),
        ],
    )
    got = charts.alerts(answer)
    assert got["lanes"] == ["entries", "web /cart · error"]
    assert [(b["id"], b["lane"], b["end"]) for b in got["bars"]] == [
        ("a1", "web /cart · error", at(5, 11)),
        ("a2", "entries", at(5, 12)),
    ]


def test_a_person_has_a_lane_per_channel_and_one_for_each_kind_without_one() -> None:
    answer = Answer(
        ["at", "kind", "channel", "what"],
        [
            (at(5, 9), "touchpoint", "web", "home_view"),
            (at(5, 9), "identity", "", "merge (link)"),
            (at(5, 10), "touchpoint", "call_center", "contact_queued"),
        ],
    )
    got = charts.person(answer)
    assert got["lanes"] == ["call_center", "identity", "web"]
    assert got["series"] == [
        {"name": "identity", "data": [[at(5, 9), "identity", "merge (link)"]]},
        {
            "name": "touchpoint",
            "data": [
                [at(5, 9), "web", "home_view"],
                [at(5, 10), "call_center", "contact_queued"],
            ],
        },
    ]
