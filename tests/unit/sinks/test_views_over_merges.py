"""journeys_latest and dropoff_paths over identity merges, on the embedded engine, against
their definition (every touchpoint re-resolved); a module of its own because chDB opens one
data folder per process at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import migrate, session

from .analyst_rows import at, dropoff, insert, journey


def rows(client: Client, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql).result_rows]


# journeys_latest and dropoff_paths over merges, against their definition: every touchpoint
# re-resolved (touchpoints_latest), joined by the event that started each journey. The views
# re-resolve only touchpoints whose identifier has an override: any other one still has the
# person it was stamped with, the journey's own (docs/stages/identity.md). Each journey below:
# (id, its person_id, the start transitions (event, minute, retracted), expected person).
MERGED_JOURNEYS = [
    ("ja", "pa", [("ea", 0, False)], "pa"),  # no override: the stamp stands
    ("jb", "pb_old", [("eb", 0, False)], "pb"),  # merged after it was sealed
    ("jc", "pc", [("ec", 0, False)], "pc"),  # merged while the stage held it: moved over
    ("jd", "px", [("ed", 0, False)], "pd"),  # its identifier went back to its own person
    ("je", "pe", [], "pe"),  # no transition (yet): the journey's person
    ("jf", "pf", [("eg", 0, True), ("ef", 5, False)], "pf"),  # a retracted start is no start
    ("jh", "ph", [("eh", 0, False), ("eg", 30, False)], "ph"),  # the earliest start counts
    ("jq", "pq", [("missing", 0, False)], "pq"),  # its event not stored (yet)
]
# Touchpoints: (event, minute, channel, stamped person, person_key).
MERGED_TOUCHPOINTS = [
    ("ea", 0, "web", "pa", "anonymous_id:a"),
    ("eb", 0, "web", "pb_old", "anonymous_id:b"),
    ("eb2", 10, "app", "pb_old", "anonymous_id:b"),
    ("eb3", 20, "call_center", "pb", "customer_id:b"),
    ("eb4", 90, "web", "pb", "customer_id:b"),  # after jb's drop-off
    ("ec", 0, "web", "pc_old", "anonymous_id:c"),
    ("ed", 0, "app", "px", "anonymous_id:d"),
    ("ef", 5, "web", "pf", "anonymous_id:f"),
    ("eg", 0, "store", "pg_old", "anonymous_id:g"),
    ("eh", 0, "web", "ph", "anonymous_id:h"),
]
# identity_overrides: (identifier, person, remapped, version).
MERGED_OVERRIDES = [
    ("anonymous_id:b", "pb", True, 1),
    ("anonymous_id:c", "pc", True, 1),
    ("anonymous_id:d", "px", True, 1),
    ("anonymous_id:d", "pd", False, 2),
    ("anonymous_id:g", "pg", True, 1),
]

# journeys_latest as it was defined before it re-resolved only overridden identifiers.
REFERENCE_LATEST = """
SELECT j.journey_id AS journey_id,
       if(p.latest_person_id = '', j.person_id, p.latest_person_id) AS latest_person_id
FROM journeys AS j FINAL
LEFT JOIN (
    SELECT journey_id AS started_journey_id, argMin(event_id, at) AS started_by
    FROM journey_transitions FINAL
    WHERE from_stage IS NULL AND NOT retracted
    GROUP BY journey_id
) AS t ON t.started_journey_id = j.journey_id
LEFT JOIN (
    SELECT toString(event_id) AS started_by, latest_person_id FROM touchpoints_latest
) AS p ON p.started_by = t.started_by
"""


def event_uuid(label: str) -> UUID:
    return UUID(int=int.from_bytes(label.encode(), "big"))


def fill_merged(client: Client) -> None:
    start = at(7, 9)
    minute = timedelta(minutes=1)
    journeys, transitions = [], []
    for jid, person, starts, _expected in MERGED_JOURNEYS:
        stages = [("discover", start, "web"), ("consider", start + 30 * minute, "web")]
        journeys.append(journey(jid, person, "dropped_off", stages, ended_at=start + 60 * minute))
        for event, minutes, retracted in starts:
            transitions.append(
                {
                    "transition_id": f"{jid}/{event}",
                    "journey_id": jid,
                    "definition_id": "purchase",
                    "to_stage": "discover",
                    "at": start + minutes * minute,
                    "event_id": str(event_uuid(event)),
                    "version": 1,
                    "retracted": retracted,
                }
            )
    insert(client, "journeys", journeys)
    insert(client, "journey_transitions", transitions)
    touchpoints = [
        {
            "event_id": event_uuid(event),
            "channel": channel,
            "event_type": "page_view",
            "occurred_at": start + minutes * minute,
            "received_at": start + minutes * minute,
            "person_id": person,
            "person_key": key,
        }
        for event, minutes, channel, person, key in MERGED_TOUCHPOINTS
    ]
    insert(client, "touchpoints", touchpoints)
    columns = ("identifier", "person_id", "remapped", "version")
    insert(
        client, "identity_overrides", [dict(zip(columns, o, strict=True)) for o in MERGED_OVERRIDES]
    )
    # jb dropped off at consider (its stage channel recorded); ja's drop-off predates the
    # column (stage_channel ''): the view falls back to the journey's stages.
    drop = {"stage": "consider", "stage_entered_at": start + 30 * minute}
    drop |= {"dropped_at": start + 60 * minute, "last_channel": "web"}
    insert(
        client,
        "dropoffs",
        [
            dropoff(
                1,
                False,
                dropoff_id="db",
                journey_id="jb",
                person_id="pb_old",
                stage_channel="app",
                **drop,
            ),
            dropoff(1, False, dropoff_id="da", journey_id="ja", person_id="pa", **drop),
        ],
    )


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("analyst-merges") / "clickhouse"
    with session(f"chdb://{path}") as client:
        migrate(client)
        fill_merged(client)
        yield client


def test_journeys_latest_resolves_persons_through_merges_as_its_definition_does(
    merged: Client,
) -> None:
    got = rows(merged, "SELECT journey_id, latest_person_id FROM journeys_latest ORDER BY 1")
    assert got == sorted((jid, expected) for jid, _p, _s, expected in MERGED_JOURNEYS)
    assert got == rows(merged, f"SELECT * FROM ({REFERENCE_LATEST}) ORDER BY 1")


def test_dropoff_paths_follow_the_merged_person_and_the_recorded_stage_channel(
    merged: Client,
) -> None:
    got = rows(
        merged,
        "SELECT dropoff_id, person_id, stage_channel, path FROM dropoff_paths ORDER BY 1",
    )
    # jb's person is pb now: its path has the touchpoints stamped pb_old and pb, from the
    # journey's start to the drop-off (not eb4, after it).
    assert got == [
        ("da", "pa", "web", ["web:page_view"]),
        ("db", "pb", "app", ["web:page_view", "app:page_view", "call_center:page_view"]),
    ]


def test_the_catalog_reads_the_stages_reached_when_definitions_are_not_recorded(
    merged: Client,
) -> None:
    from deploy.query.questions import CATALOG_SEEN

    # Nothing recorded here (no journey_definitions rows): the stages the journeys reached,
    # as journey_stages has them, in the order first seen.
    assert rows(merged, CATALOG_SEEN.sql) == rows(
        merged,
        "SELECT definition_id, stage FROM journey_stages GROUP BY definition_id, stage "
        "ORDER BY definition_id, min(position), stage",
    )
    assert rows(merged, CATALOG_SEEN.sql) == [("purchase", "discover"), ("purchase", "consider")]
