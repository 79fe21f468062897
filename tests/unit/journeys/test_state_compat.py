"""State written by the previous version of the journeys stage still restores, and the
journeys it holds go on: a snapshot of one person as that version wrote it (a purchase journey
dropped off at checkout, a support track with one hit, an open call-center session)."""

from __future__ import annotations

from typing import Any

import orjson

from stream_processors.journeys.core.outputs import Retraction
from tests.unit.journeys.test_core import T0_MS, Run
from tests.unit.journeys.test_rows import rows

# `JourneyCore.snapshot_person("p1")` before instances kept their reported drop-off and
# sessions their version: instance rows of 20 fields, session rows of 9.
PREVIOUS = (
    b'{"v":1,"tracks":[{"d":"purchase@1","h":null,"f":1740533700000,"hits":[[1740787200000,'
    b'"ev-00001",0,"web","/home_view"],[1740787800000,"ev-00002",1,"web","/product_view"],'
    b'[1740788400000,"ev-00003",2,"web","/add_to_cart"],[1740789000000,"ev-00004",3,"web",'
    b'"/checkout_step"]],"i":[["7f1ca326-4c79-5bc3-9cdc-f93dc19362f0",1740787200000,'
    b'"ev-00001",3,1740789000000,2,1740792600000,-1,null,5,5,0,["web","call_center"],'
    b'"call_center","/contact_queued",1740789600000,[[1740787200000,"ev-00001",0,"web",'
    b'"/home_view"],[1740787800000,"ev-00002",1,"web","/product_view"],[1740788400000,'
    b'"ev-00003",2,"web","/add_to_cart"],[1740789000000,"ev-00004",3,"web","/checkout_step"]],'
    b'null,4611686018427387903,null]],"g":[]},{"d":"support@1","h":null,'
    b'"f":-4611686018427387903,"hits":[[1740789600000,"ev-00005",1,"call_center",'
    b'"/contact_queued"]],"i":[],"g":[]}],"sessions":[["call_center","ev-00005",1740789600000,'
    b'1740789600000,1,0,false,"/contact_queued","/contact_queued"]],"pending":[]}'
)
WATERMARK = T0_MS + 95 * 60_000


def restored() -> Run:
    run = Run()
    run.core.restore_person("p1", orjson.loads(PREVIOUS))
    run.core.restore_watermark(WATERMARK)
    run.seq = 5
    return run


def test_a_drop_off_restored_from_the_previous_format_is_retracted_with_its_facts() -> None:
    run = restored()
    run.send("p1", run.event(60, "pos_purchase", "store"))  # late: the journey converted
    (retraction,) = run.of(Retraction)
    assert retraction.reason == "late_event" and retraction.dropoff is not None
    (row,) = [r for r in rows(run.out)["dropoffs"] if r["retracted"]]
    expected: dict[str, Any] = {
        "stage": "checkout",
        "reason": "time_limit",
        "dropped_at": (T0_MS + 90 * 60_000) / 1000,
        "stage_entered_at": (T0_MS + 30 * 60_000) / 1000,
        "retraction_reason": "late_event",
        "version": 6,
    }
    assert {k: row[k] for k in expected} == expected
    assert row["last_channel"] and row["touchpoints"] > 0


def test_a_person_restored_from_the_previous_format_snapshots_in_the_current_one() -> None:
    run = restored()
    again = Run()
    again.core.restore_person("p1", orjson.loads(orjson.dumps(run.core.snapshot_person("p1"))))
    assert again.core.journeys_of("p1") == run.core.journeys_of("p1")
