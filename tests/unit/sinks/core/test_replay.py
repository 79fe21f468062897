"""sinks.core.replay: a replay commits past what is settled and stops at what is still refused."""

from __future__ import annotations

import pytest

from sinks.core.replay import Replayed, ReplayReport, commit_offsets


def test_everything_inserted_commits_past_the_last_record() -> None:
    done = [Replayed(0, o, "inserted", 1, "journeys") for o in range(5, 9)]
    assert commit_offsets(done) == {0: 9}


def test_a_record_still_refused_stays_and_holds_the_ones_after_it() -> None:
    done = [
        Replayed(0, 5, "inserted", 1, "journeys"),
        Replayed(0, 6, "refused", table="journeys"),
        Replayed(0, 7, "inserted", 1, "touchpoints"),  # read again next time: its token dedups
        Replayed(0, 8, "refused", table="touchpoints"),
    ]
    assert commit_offsets(done) == {0: 6}


def test_partitions_are_independent_and_unreadable_records_are_passed_over() -> None:
    done = [
        Replayed(0, 0, "refused", table="journeys"),
        Replayed(1, 3, "unreadable"),
        Replayed(1, 4, "inserted", 2, "journeys"),
        Replayed(0, 1, "inserted", 1, "journeys"),
    ]
    assert commit_offsets(done) == {0: 0, 1: 5}


def test_nothing_read_commits_nothing() -> None:
    assert commit_offsets([]) == {}


@pytest.mark.parametrize("written", [3, 0], ids=["new-rows", "already-there"])
def test_report_counts_records_and_rows(written: int) -> None:
    report = ReplayReport.of(
        [
            Replayed(0, 0, "inserted", written, "journeys"),
            Replayed(0, 1, "refused", table="journeys"),
            Replayed(0, 2, "refused", table="touchpoints"),
            Replayed(0, 3, "unreadable"),
        ]
    )
    assert (report.records, report.inserted, report.refused, report.unreadable) == (4, 1, 2, 1)
    assert report.rows == written
    assert report.refused_tables == {"journeys": 1, "touchpoints": 1}
    first, *tables = report.lines()
    assert first.startswith("replayed 4 dead letters: 1 inserted")
    assert tables == [
        "  still refused by journeys: 1 (left for the next replay)",
        "  still refused by touchpoints: 1 (left for the next replay)",
    ]
