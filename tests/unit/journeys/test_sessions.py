"""Open UX sessions are reported while they last: at most one row per report interval
(5 minutes of event time) for each session that changed, a higher version each time, the
closed row last; a session whose id gives way is reported merged."""

from __future__ import annotations

from stream_processors.journeys.core.outputs import SessionRecord
from stream_processors.journeys.core.state import session_id
from tests.unit.journeys.test_core import Run
from tests.unit.journeys.test_state_compat import restored


def rows(run: Run) -> list[tuple[str, str, int, int]]:
    return [(s.channel, s.status, s.events, s.version) for s in run.of(SessionRecord)]


def test_a_store_session_is_visible_while_it_waits_for_the_late_tolerance() -> None:
    run = Run()
    run.send("p1", run.event(0, "pos_purchase", "store"))
    run.at(1)  # the partition's first sweep reports what it holds
    assert rows(run) == [("store", "open", 1, 1)]
    run.at(60)
    assert len(rows(run)) == 1  # unchanged: nothing more to say
    run.send("p1", run.event(10, "pos_return", "store"))  # late, and in the same session
    run.at(64)
    run.at(65)
    assert rows(run)[1:] == [("store", "open", 2, 2)]
    run.at(66, late_minutes=41)  # the late channels' watermark passed its gap
    assert rows(run)[2:] == [("store", "closed", 2, 3)]
    assert {s.session_id for s in run.of(SessionRecord)} == {session_id("store", "ev-00001")}


def test_a_busy_session_costs_one_row_per_interval() -> None:
    run = Run()
    for minute in range(20):
        run.send("p1", run.event(minute, "page_view"))
        run.at(minute + 0.5)
    run.at(60)
    statuses = [(status, events) for _c, status, events, _v in rows(run)]
    assert statuses == [("open", 1), ("open", 6), ("open", 11), ("open", 16), ("closed", 20)]
    assert [v for *_, v in rows(run)] == [1, 2, 3, 4, 5]


def test_a_merged_persons_reported_session_gives_way() -> None:
    run = Run()
    run.send("anon", run.event(0, "home_view"))
    run.send("cust", run.event(2, "product_view"))
    run.at(5)
    assert [(s.person_id, s.status) for s in run.of(SessionRecord)] == [
        ("anon", "open"),
        ("cust", "open"),
    ]
    run.out.clear()
    run.out += run.core.move_person("cust", "anon")  # anon's session started first
    run.at(10)
    records = run.of(SessionRecord)
    assert [(s.session_id, s.status, s.version) for s in records] == [
        (session_id("web", "ev-00002"), "merged", 2),
        (session_id("web", "ev-00001"), "open", 2),
    ]
    assert (records[1].person_id, records[1].events) == ("anon", 2)


def test_a_session_restored_from_the_previous_format_is_reported_and_closed() -> None:
    run = restored()  # an open call-center session, never reported
    run.send("p1", run.event(41, "contact_answered", "call_center"))
    run.at(100)
    run.at(101, late_minutes=80)
    assert [(s.status, s.events, s.version) for s in run.of(SessionRecord)] == [
        ("open", 2, 1),
        ("closed", 2, 2),
    ]
