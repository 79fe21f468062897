"""The authority's records, without Kafka: every record goes to the audit, and a merge goes to
`identity-merges` on each partition that loses a person, plus the winner's when another one
loses; a move goes to the partition it leaves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from stream_processors.identity import metrics as identity_metrics
from stream_processors.identity.core.records import (
    MergeRecord,
    MoveRecord,
    RefusalRecord,
    Resolution,
)
from stream_processors.identity.stage import Resolving

T = datetime(2025, 3, 1, tzinfo=UTC)
PARTITION = {"P": 0, "R": 0, "Q": 1, "S": 1, "U": 2}


def resolving() -> Resolving:
    # `_records` needs only the partition of a person.
    return Resolving(None, None, None, None, PARTITION.__getitem__)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("old", "targets"),
    [
        (("Q",), {0, 1}),  # the loser's partition, and the winner's: it waits for the state
        (("R",), {0}),  # the same partition as the winner's
        (("P",), set()),  # an identifier that was alone: no person's state moves
        (("Q", "U"), {0, 1, 2}),
        (("R", "P"), {0}),
        (("P", "S"), {0, 1}),
    ],
)
def test_a_merge_goes_to_the_partitions_that_lose_a_person_and_the_winners(
    old: tuple[str, ...], targets: set[int]
) -> None:
    merge = MergeRecord("link", "e1", T, ("customer_id:c", "anonymous_id:a"), old, "P")
    audit: list[bytes] = []
    merges: dict[int, list[bytes]] = {}
    tally: dict[Any, int] = {}
    seq = resolving()._records(Resolution("P", merges=(merge,)), 7, audit, merges, tally)
    assert seq == 8
    assert [orjson.loads(row)["version"] for row in audit] == [8]
    assert set(merges) == targets
    assert all(rows == audit for rows in merges.values())
    assert tally == {identity_metrics.IDENTITY_MERGES.labels("link"): 1}


def test_moves_and_refusals_are_audited_and_counted_once_each() -> None:
    move = MoveRecord("e2", T, ("phone_hash:p",), "Q", "P")
    refusals = (
        RefusalRecord("cap", "e2", T, ("device_id:d", "customer_id:c"), "over the cap"),
        RefusalRecord("cap", "e2", T, ("device_id:d", "customer_id:x"), "over the cap"),
    )
    audit: list[bytes] = []
    merges: dict[int, list[bytes]] = {}
    tally: dict[Any, int] = {}
    resolving()._records(Resolution("P", moves=(move,), refusals=refusals), 0, audit, merges, tally)
    rows = [orjson.loads(row) for row in audit]
    assert [(r["kind"], r["version"], r["person_id"]) for r in rows] == [
        ("move", 1, "P"),
        ("refusal", 2, "P"),
        ("refusal", 3, "P"),
    ]
    assert rows[0]["old_person_ids"] == ["Q"] and rows[1]["old_person_ids"] == []
    assert merges == {1: audit[:1]}
    assert tally == {
        identity_metrics.IDENTITY_MOVES: 1,
        identity_metrics.IDENTITY_REFUSALS.labels("cap"): 2,
    }
