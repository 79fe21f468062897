"""stream_processors.journeys.core.engine: the journey state machine, deadlines, sessions, late
events and retractions, identity merges, snapshots, and the simulator's ground truth."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from producers.adapters.pos import SALE_TYPES
from producers.pii import PiiHasher
from producers.simulator.config import Incident, SimConfig
from producers.simulator.engine import Simulation
from producers.simulator.truth import GroundTruth
from schemas.definitions import DefinitionSpec, load_definitions
from schemas.settings import PiiSettings
from stream_processors.core.uuids import namespace, uuid5
from stream_processors.journeys.core.deadlines import NEVER, DeadlineWheel, Timed
from stream_processors.journeys.core.engine import JourneyCore, JourneySettings, event_ms
from stream_processors.journeys.core.match import compile_definition
from stream_processors.journeys.core.outputs import (
    DropOff,
    JourneyUpdate,
    Output,
    Rejected,
    Retraction,
    SessionRecord,
    StageTransition,
)
from stream_processors.journeys.core.settings import EventTimes
from stream_processors.journeys.core.state import Person, journey_id, session_id

SHIPPED = sorted((Path(__file__).resolve().parents[3] / "deploy" / "definitions").glob("*.toml"))
T0 = datetime(2025, 3, 1, tzinfo=UTC)
T0_MS = event_ms(T0)
MIN = 60_000
HOUR = 60 * MIN
LATE = {"call_center", "store"}


# The event types the POS adapter gives sales (a sale's type is its event type).
POS_SALE_EVENTS = [sale for sale in SALE_TYPES if sale != "return"]


def spec(**fields: Any) -> DefinitionSpec:
    """A small definition: a (1h) -> b (1h) -> done, plus what the test adds."""
    base: dict[str, Any] = {
        "id": "flow",
        "version": 1,
        "stages": [
            {"name": "a", "time_limit": "1h", "match": [{"event_types": ["a"]}]},
            {"name": "b", "time_limit": "1h", "match": [{"event_types": ["b"]}]},
            {"name": "done", "success": True, "match": [{"event_types": ["done"]}]},
        ],
    }
    base.update(fields)
    return DefinitionSpec.model_validate(base)


class Run:
    """A core fed like a stage feeds it: events, then the watermark; outputs collected."""

    def __init__(self, core: JourneyCore | None = None) -> None:
        self.core = core or JourneyCore(load_definitions(SHIPPED))
        self.out: list[Output] = []
        self.seq = 0

    def event(
        self, minutes: float, event_type: str, channel: str = "web", **properties: Any
    ) -> dict[str, Any]:
        self.seq += 1
        return {
            "event_id": f"ev-{self.seq:05d}",
            "channel": channel,
            "event_type": event_type,
            "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
            "touchpoint": f"/{event_type}",
            "properties": properties,
        }

    def send(self, person: str, *events: dict[str, Any]) -> list[Output]:
        new: list[Output] = []
        for event in events:
            new += self.core.observe(event, person)
        self.out += new
        return new

    def at(self, minutes: float, late_minutes: float | None = None) -> list[Output]:
        late = None if late_minutes is None else T0_MS + round(late_minutes * MIN)
        new = self.core.advance_watermark(T0_MS + round(minutes * MIN), late)
        self.out += new
        return new

    def of(self, kind: type[Any]) -> list[Any]:
        return [o for o in self.out if isinstance(o, kind)]

    def closed(self) -> list[SessionRecord]:
        """The sessions reported closed (open ones are reported too, as they change)."""
        return [s for s in self.of(SessionRecord) if s.status == "closed"]

    def journeys(self) -> dict[str, JourneyUpdate]:
        latest: dict[str, JourneyUpdate] = {}
        for update in self.of(JourneyUpdate):
            known = latest.get(update.journey_id)
            assert known is None or update.version > known.version, "versions must grow"
            latest[update.journey_id] = update
        return latest

    def only(self) -> JourneyUpdate:
        (journey,) = self.journeys().values()
        return journey


def stages(update: JourneyUpdate) -> list[str]:
    return [s[0] for s in update.stages]


# -- the state machine ----------------------------------------------------------------------


def test_a_purchase_journey_converts_with_its_transitions() -> None:
    run = Run()
    run.send(
        "p1",
        *(
            run.event(m, et)
            for m, et in (
                (0, "home_view"),
                (5, "page_view"),
                (10, "product_view"),
                (20, "add_to_cart"),
                (30, "checkout_step"),
                (40, "order_completed"),
            )
        ),
    )
    run.at(41)
    journey = run.only()
    assert (journey.status, journey.stage, journey.person_id) == ("converted", "purchase", "p1")
    assert stages(journey) == ["discover", "consider", "cart", "checkout", "purchase"]
    assert journey.time_to_convert_ms == 40 * MIN
    assert (journey.touchpoints, journey.channels) == (6, ("web",))
    moves = [(t.from_stage, t.to_stage, t.elapsed_ms) for t in run.of(StageTransition)]
    assert moves == [
        (None, "discover", None),
        ("discover", "consider", 10 * MIN),
        ("consider", "cart", 10 * MIN),
        ("cart", "checkout", 10 * MIN),
        ("checkout", "purchase", 10 * MIN),
    ]
    assert not run.of(DropOff)


@pytest.mark.parametrize("sale", ["pos_purchase", *POS_SALE_EVENTS])
def test_a_store_sale_converts_a_purchase_journey_begun_online(sale: str) -> None:
    # The POS adapter (`journeys ingest store`) writes its sales as `purchase` events.
    run = Run()
    run.send("p1", run.event(0, "home_view"), run.event(10, "product_view"))
    run.send("p1", run.event(40, sale, "store"))
    run.at(60)
    assert (run.only().status, run.only().stage) == ("converted", "purchase")


def test_events_wait_for_the_watermark() -> None:
    run = Run()
    assert run.send("p1", run.event(0, "home_view"), run.event(10, "product_view")) == []
    assert run.at(5) and stages(run.only()) == ["discover"]  # released up to the watermark
    run.at(10)
    assert stages(run.only()) == ["discover", "consider"]


def test_arrival_order_within_the_lateness_does_not_matter() -> None:
    def outcome(order: Sequence[int]) -> tuple[list[Any], list[Any]]:
        run = Run()
        events = [
            run.event(m, et)
            for m, et in (
                (0, "home_view"),
                (1, "search"),
                (3, "product_view"),
                (4, "add_to_cart"),
                (4, "page_view"),
            )
        ]
        run.send("p1", *(events[i] for i in order))
        run.at(30 * 60)
        return sorted(run.journeys().values()), run.of(StageTransition)

    assert outcome([4, 3, 1, 0, 2]) == outcome([0, 1, 2, 3, 4])


def test_the_drop_off_fires_when_the_watermark_reaches_the_deadline() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"), run.event(5, "page_view", error="http_500"))
    run.at(5)
    assert not run.of(DropOff)
    assert not [o for o in run.at(24 * 60 - 1 / MIN) if isinstance(o, DropOff)]
    (drop,) = [o for o in run.at(24 * 60) if isinstance(o, DropOff)]
    assert (drop.stage, drop.reason, drop.deadline_ms) == (
        "discover",
        "time_limit",
        T0_MS + 24 * HOUR,
    )
    assert (drop.stage_entered_ms, drop.last_touchpoint, drop.friction, drop.touchpoints) == (
        T0_MS,
        "/page_view",
        1,
        2,
    )
    assert run.only().status == "dropped_off" and run.only().ended_ms == drop.deadline_ms


def test_progress_exactly_at_the_deadline_is_in_time() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"), run.event(24 * 60, "product_view"))
    run.at(26 * 60)
    assert not run.of(DropOff)
    assert stages(run.only()) == ["discover", "consider"]


def test_repeating_a_stage_does_not_extend_its_time_limit() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"), run.event(23 * 60, "home_view"))
    run.at(24 * 60)
    assert [d.deadline_ms for d in run.of(DropOff)] == [T0_MS + 24 * HOUR]


def test_a_later_event_starts_a_new_instance_after_an_outcome() -> None:
    run = Run()
    run.send(
        "p1",
        run.event(0, "home_view"),
        run.event(1, "product_view"),
        run.event(26 * 60, "home_view"),  # a visit while it is open starts nothing
        run.event(27 * 60, "add_to_cart"),
        run.event(28 * 60, "checkout_step"),
        run.event(28 * 60 + 30, "order_completed"),
        run.event(30 * 60, "search"),
    )
    run.at(31 * 60)
    journeys = sorted(run.journeys().values(), key=lambda j: j.started_ms)
    assert [(j.status, stages(j)) for j in journeys] == [
        ("converted", ["discover", "consider", "cart", "checkout", "purchase"]),
        ("open", ["discover"]),
    ]
    assert journeys[1].journey_id == journey_id(run.core.definitions[0], "ev-00007")


def test_a_drop_off_then_a_new_start() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"), run.event(25 * 60, "home_view"))
    run.at(26 * 60)
    journeys = sorted(run.journeys().values(), key=lambda j: j.started_ms)
    assert [j.status for j in journeys] == ["dropped_off", "open"]
    assert journeys[0].journey_id != journeys[1].journey_id


def test_a_person_walks_several_definitions_at_once() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"), run.event(1, "help_view"))
    run.at(2)
    assert sorted(j.definition_id for j in run.journeys().values()) == ["purchase", "support"]
    # Each journey counts only its own events: the help page is the support journey's.
    now = {j.definition_id: (j.touchpoints, j.channels) for j in run.core.journeys_of("p1")}
    assert now == {"purchase": (1, ("web",)), "support": (1, ("web",))}


def test_a_journey_counts_only_the_events_that_belong_to_it() -> None:
    """Another journey's events in its time span are not its own: a support call does not
    make a purchase drop off on the phone. Its own are those its stages match, plus what its
    definition includes (shop pages for purchase; every part of a call for support)."""
    run = Run()
    run.send(
        "p1",
        run.event(0, "home_view"),
        run.event(1, "page_view", error="http_500"),  # included: browsing the shop
        run.event(2, "help_view", "app"),  # the support journey's
        run.event(3, "contact_queued", "call_center", transferred="true"),
        run.event(4, "contact_answered", "call_center"),  # included in support
        run.event(5, "login"),  # nobody's
    )
    run.at(25 * 60)
    drops = {d.definition_id: d for d in run.of(DropOff)}
    purchase = drops["purchase"]
    assert (purchase.touchpoints, purchase.friction, purchase.channels) == (2, 1, ("web",))
    assert (purchase.last_channel, purchase.stage_channel) == ("web", "web")
    journeys = {j.definition_id: j for j in run.journeys().values()}
    support = journeys["support"]
    assert (support.touchpoints, support.friction, support.channels) == (
        3,
        1,
        ("app", "call_center"),
    )


def test_a_call_that_ends_unresolved_is_not_progress() -> None:
    run = Run()
    run.send(
        "p1",
        run.event(0, "help_view"),
        run.event(10, "contact_queued", "call_center"),
        run.event(20, "contact_ended", "call_center", disposition="unresolved"),
    )
    run.at(30)
    assert run.only().stage == "contact"
    run.send("p1", run.event(40, "contact_ended", "call_center", disposition="resolved"))
    run.at(50)
    assert run.only().status == "converted"


# -- late events and the reopen window ------------------------------------------------------


def test_a_late_store_purchase_retracts_the_drop_off() -> None:
    run = Run()
    run.send(
        "p1",
        *(
            run.event(m, et)
            for m, et in (
                (0, "home_view"),
                (10, "product_view"),
                (20, "add_to_cart"),
                (30, "checkout_step"),
            )
        ),
    )
    run.at(95)
    (drop,) = run.of(DropOff)
    assert (drop.stage, drop.deadline_ms) == ("checkout", T0_MS + 90 * MIN)
    new = run.send("p1", run.event(60, "pos_purchase", "store"))  # behind the watermark
    (retraction,) = [o for o in new if isinstance(o, Retraction)]
    assert (retraction.retracted_id, retraction.retracted, retraction.reason) == (
        drop.dropoff_id,
        "dropped_off",
        "late_event",
    )
    assert retraction.at_ms == T0_MS + 60 * MIN
    journey = run.only()
    assert (journey.status, journey.stage, journey.time_to_convert_ms) == (
        "converted",
        "purchase",
        60 * MIN,
    )
    assert journey.channels == ("web", "store")
    assert [t.to_stage for t in new if isinstance(t, StageTransition)] == ["purchase"]
    assert new.index(retraction) < new.index(journey)


def test_late_progress_can_drop_off_again_at_the_next_stage() -> None:
    run = Run()
    run.send("p1", run.event(0, "help_view"))
    run.at(80 * 60)  # past the 48 h and the contact's 24 h below
    first = run.of(DropOff)
    new = run.send("p1", run.event(47 * 60, "contact_queued", "call_center"))
    kinds = [type(o).__name__ for o in new if not isinstance(o, StageTransition)]
    assert kinds == ["Retraction", "DropOff", "JourneyUpdate"]
    retraction, second = new[0], next(o for o in new if isinstance(o, DropOff))
    assert isinstance(retraction, Retraction) and retraction.retracted_id == first[0].dropoff_id
    assert (second.stage, second.deadline_ms) == ("contact", T0_MS + 71 * HOUR)
    assert run.only().status == "dropped_off" and run.only().stage == "contact"


def test_a_customer_returning_within_the_reopen_window_reopens_the_journey() -> None:
    run = Run()
    run.send("p1", run.event(0, "add_to_cart"))  # not an entry stage: nothing starts
    run.send(
        "p1",
        run.event(1, "home_view"),
        run.event(2, "product_view"),
        run.event(3, "add_to_cart"),
        run.event(4, "checkout_step"),
    )
    run.at(64 + 60)  # checkout's 1 h passed at 64 min
    (drop,) = run.of(DropOff)
    run.send("p1", run.event(64 + 110, "order_completed"))  # 110 min later: inside 2 h
    run.at(64 + 120)
    (retraction,) = run.of(Retraction)
    assert (retraction.retracted_id, retraction.reason) == (drop.dropoff_id, "reopened")
    journey = run.only()
    assert (journey.status, journey.journey_id) == ("converted", drop.journey_id)


def test_returning_after_the_reopen_window_changes_nothing() -> None:
    run = Run()
    run.send(
        "p1",
        run.event(0, "home_view"),
        run.event(1, "product_view"),
        run.event(2, "add_to_cart"),
        run.event(3, "checkout_step"),
    )
    run.at(63 + 60)
    run.send("p1", run.event(63 + 121, "order_completed"))
    run.at(63 + 130)
    assert not run.of(Retraction)
    assert run.only().status == "dropped_off"


def test_too_late_events_are_rejected() -> None:
    run = Run(JourneyCore(load_definitions(SHIPPED), JourneySettings(late_tolerance_ms=HOUR)))
    run.send("p1", run.event(0, "home_view"))
    run.at(3 * 60)
    (rejected,) = run.send("p1", run.event(60, "product_view"))
    assert isinstance(rejected, Rejected) and rejected.reason == "too_late"
    assert run.core.counters["rejected"] == 1
    assert stages(run.only()) == ["discover"]


# -- failure stages, lifetimes, hold-constant keys -------------------------------------------


def test_a_failure_stage_drops_off_at_once_and_is_final() -> None:
    definition = spec(
        reopen_window="1h",
        stages=[
            *spec().model_dump()["stages"],
            {"name": "cancelled", "failure": True, "match": [{"event_types": ["cancel"]}]},
        ],
    )
    run = Run(JourneyCore([definition]))
    run.send(
        "p1", run.event(0, "a"), run.event(10, "b"), run.event(20, "cancel"), run.event(25, "done")
    )
    run.at(200)
    (drop,) = run.of(DropOff)
    assert (drop.reason, drop.stage, drop.failure_stage, drop.deadline_ms) == (
        "failure",
        "b",
        "cancelled",
        T0_MS + 20 * MIN,
    )
    assert not run.of(Retraction) and run.only().status == "dropped_off"


def test_the_lifetime_expires_a_journey_and_late_progress_retracts_it() -> None:
    run = Run(JourneyCore([spec(lifetime="90m")]))
    run.send("p1", run.event(0, "a"), run.event(50, "b"))
    run.at(100)
    journey = run.only()
    assert (journey.status, journey.ended_ms) == ("expired", T0_MS + 90 * MIN)
    assert not run.of(DropOff)
    run.send("p1", run.event(80, "done", "store"))
    (retraction,) = run.of(Retraction)
    assert (retraction.retracted, retraction.reason) == ("expired", "late_event")
    assert run.only().status == "converted"


def test_no_reopening_once_the_lifetime_has_passed() -> None:
    run = Run(JourneyCore([spec(lifetime="100m", reopen_window="1h")]))
    run.send("p1", run.event(0, "a"), run.event(30, "b"), run.event(95, "done"))
    run.send("p2", run.event(0, "a"), run.event(20, "b"), run.event(105, "done"))
    run.at(200)
    status = {j.person_id: j.status for j in run.journeys().values()}
    assert status == {"p1": "converted", "p2": "dropped_off"}  # p2 came back at 105 > 100
    assert [r.reason for r in run.of(Retraction)] == ["reopened"]


def test_a_hold_constant_key_keeps_journeys_apart() -> None:
    run = Run(JourneyCore([spec(hold_constant="order_id")]))
    run.send(
        "p1",
        run.event(0, "a", order_id="o1"),
        run.event(1, "a", order_id="o2"),
        run.event(2, "b", order_id="o1"),
        run.event(3, "b"),  # no order: counts for none
        run.event(4, "done", order_id="o2"),
    )
    run.at(5)
    by_hold = {j.hold: (j.status, stages(j)) for j in run.journeys().values()}
    assert by_hold == {"o1": ("open", ["a", "b"]), "o2": ("converted", ["a", "done"])}


def test_entry_stages_can_be_chosen() -> None:
    run = Run(JourneyCore([spec(entry_stages=["a", "b"])]))
    run.send("p1", run.event(0, "b"), run.event(1, "done"))
    run.at(2)
    assert stages(run.only()) == ["b", "done"]


# -- sessions and friction --------------------------------------------------------------------


def test_sessions_end_after_the_inactivity_gap() -> None:
    run = Run()
    run.send(
        "p1",
        run.event(0, "home_view"),
        run.event(10, "page_view", rage_click="true"),
        run.event(45, "product_view"),
        run.event(50, "add_to_cart"),
        run.event(51, "checkout_step"),
        run.event(52, "order_completed"),
    )
    run.at(60)
    (first,) = run.closed()
    assert (first.started_ms, first.ended_ms, first.events, first.friction) == (
        T0_MS,
        T0_MS + 10 * MIN,
        2,
        1,
    )
    assert not first.task_completed and first.session_id == session_id("web", "ev-00001")
    run.at(52 + 29)
    assert len(run.closed()) == 1
    run.at(52 + 30)
    second = run.closed()[1]
    assert (second.events, second.task_completed, second.first_touchpoint) == (
        4,
        True,
        "/product_view",
    )


def test_late_channel_sessions_close_on_their_own_watermark() -> None:
    run = Run()
    run.send("p1", run.event(0, "contact_queued", "call_center"), run.event(1, "home_view"))
    run.at(120)
    assert [s.channel for s in run.closed()] == ["web"]
    run.at(121, late_minutes=40)
    assert [s.channel for s in run.closed()] == ["web", "call_center"]


def test_friction_is_a_pluggable_predicate() -> None:
    run = Run(JourneyCore(load_definitions(SHIPPED), is_friction=lambda e: e["channel"] == "app"))
    run.send("p1", run.event(0, "home_view", error="x"), run.event(1, "page_view", "app"))
    run.at(25 * 60)
    (drop,) = run.of(DropOff)
    assert (drop.friction, drop.touchpoints, drop.last_channel) == (1, 2, "app")


@pytest.mark.parametrize(
    ("value", "counts"), [("http_500", 1), ("true", 1), ("false", 0), ("", 0), (0, 0), (None, 0)]
)
def test_default_friction_is_a_property_with_a_true_value(value: Any, counts: int) -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view", error=value))
    run.at(25 * 60)
    assert run.of(DropOff)[0].friction == counts


# -- identity merges --------------------------------------------------------------------------


def test_moving_a_person_merges_their_open_journeys() -> None:
    run = Run()
    run.send("anon", run.event(0, "home_view"), run.event(10, "product_view"))
    run.send("cust", run.event(5, "search"), run.event(20, "add_to_cart"))
    run.at(30)
    before = {j.person_id: j.journey_id for j in run.journeys().values()}
    new = run.core.move_person("anon", "cust")
    run.out += new
    journeys = run.journeys()
    kept = journeys[before["anon"]]  # the earlier start keeps its id
    assert (kept.person_id, kept.status, stages(kept)) == (
        "cust",
        "open",
        ["discover", "consider", "cart"],
    )
    assert kept.touchpoints == 4
    gone = journeys[before["cust"]]
    assert (gone.status, gone.merged_into) == ("merged", before["anon"])
    run.send("anon", run.event(31, "checkout_step"))  # stitched before the merge was known
    run.at(32)
    assert run.core.persons() == ["cust"]
    assert run.journeys()[before["anon"]].stage == "checkout"


def test_moving_a_person_carries_buffered_events_and_sessions() -> None:
    run = Run()
    run.send("anon", run.event(0, "home_view"))
    run.at(1)
    run.send("anon", run.event(5, "product_view"))  # still waiting for the watermark
    run.core.move_person("anon", "cust")
    run.at(40)
    assert [(j.person_id, stages(j)) for j in run.journeys().values()][-1] == (
        "cust",
        ["discover", "consider"],
    )
    assert [(s.person_id, s.events) for s in run.closed()] == [("cust", 2)]


def test_export_and_import_carry_a_person_between_partitions() -> None:
    one, two = Run(), Run()
    one.send("anon", one.event(0, "home_view"))
    two.seq = 100
    two.send("cust", two.event(5, "help_view"))
    one.at(6)
    two.at(6)
    tracks = one.core._people["anon"].tracks
    assert tracks and all(t.hits and t.instances for t in tracks)
    snapshot = one.core.export_person("anon")
    one.core.drop_person("anon", moved_to="cust")
    data = orjson.loads(orjson.dumps(snapshot))  # the stage sends it after the drop
    two.out += two.core.import_person("cust", data)
    # The deadline wheel still files its tracks, which must not keep their journeys alive
    # until due (a million merged persons' worth), nor wake anything then.
    assert all(not t.hits and not t.instances for t in tracks)
    assert one.core.persons() == [] and one.core.snapshot_person("anon") == {
        "v": 1,
        "moved_to": "cust",
        "until": T0_MS + 6 * MIN + 72 * HOUR,
    }
    assert sorted((j.definition_id, j.person_id) for j in two.journeys().values()) == [
        ("purchase", "cust"),
        ("support", "cust"),
    ]
    assert one.at(80 * 60) == []


def test_an_import_fires_the_deadlines_this_partition_has_already_passed() -> None:
    behind, ahead = Run(), Run()
    behind.send("anon", behind.event(0, "home_view"))
    behind.at(1)
    ahead.seq = 100
    ahead.at(48 * 60)  # a day past the discover stage's 24 h limit, and no input follows
    data = orjson.loads(orjson.dumps(behind.core.export_person("anon")))
    ahead.out += ahead.core.import_person("cust", data)
    (drop,) = ahead.of(DropOff)
    assert (drop.person_id, drop.stage, drop.deadline_ms) == ("cust", "discover", T0_MS + 24 * HOUR)


def test_a_person_from_a_partition_ahead_in_time_still_takes_this_ones_events() -> None:
    """The exporter raised the track's floor with its own, later, watermark: the importer
    must not ignore the events it still accepts."""
    ahead, behind = Run(), Run()
    ahead.send("device", ahead.event(80 * 60, "help_view", "app"))
    ahead.at(130 * 60)  # the support journey dropped off at 128 h: its track was swept
    data = orjson.loads(orjson.dumps(ahead.core.export_person("device")))
    assert data["tracks"][0]["f"] > T0_MS, "the exporter raised the track's floor"
    behind.seq = 100
    behind.at(60)
    behind.out += behind.core.import_person("cust", data)
    behind.send("cust", behind.event(0, "help_view"))
    assert behind.core.counters["ignored_hits"] == 0
    started = sorted(j.started_ms for j in behind.journeys().values())
    assert started == [T0_MS, T0_MS + 80 * HOUR]


# -- state ------------------------------------------------------------------------------------


def scenario(run: Run, second_half: bool) -> None:
    steps = [
        (0, "home_view", "web"),
        (3, "help_view", "app"),
        (10, "product_view", "web"),
        (70, "add_to_cart", "web"),
        (71, "checkout_step", "web"),
    ]
    if second_half:
        steps = [(100, "contact_queued", "call_center"), (30 * 60, "page_view", "web")]
    for minutes, event_type, channel in steps:
        run.send("p1", run.event(minutes, event_type, channel))
    run.at(steps[-1][0] + 1)


def test_a_restored_core_goes_on_exactly_like_the_original() -> None:
    original = Run()
    scenario(original, False)
    saved = {
        pid: orjson.loads(orjson.dumps(original.core.snapshot_person(pid)))
        for pid in original.core.take_dirty()
    }
    restored = Run()
    for pid, data in saved.items():
        if data is not None:
            restored.core.restore_person(pid, data)
    restored.core.restore_watermark(original.core.watermark_ms)
    restored.seq = original.seq
    original.out.clear()
    scenario(original, True)
    scenario(restored, True)
    assert restored.out == original.out
    assert any(isinstance(o, DropOff) for o in restored.out)


def _thawed(core: JourneyCore) -> list[Person]:
    """The core's persons, the frozen ones thawed (cold: kept as their snapshot)."""
    people = [core._people[pid] for pid in core.persons()]
    for person in people:
        if person.frozen is not None:
            core._thaw(person)
    return people


def _sharing(core: JourneyCore) -> dict[str, int]:
    """How the persons of a core share objects: the objects their names and channel lists
    are, against the distinct values; the hits their instances reached, against those that
    are the track's own hit objects."""
    names: dict[int, str] = {}
    channel_lists: dict[int, tuple[str, ...]] = {}
    reached = shared = 0
    for person in _thawed(core):
        for session in person.sessions or ():
            for name in (session.channel, session.first_touchpoint, session.last_touchpoint):
                if name is not None:
                    names[id(name)] = name
        for track in person.tracks:
            own = {id(h) for h in track.hits}
            for hit in track.hits:
                for name in hit[3:5]:
                    if name is not None:
                        names[id(name)] = name
            for inst in (*track.instances, *(track.ghosts or {}).values()):
                channel_lists[id(inst.channels)] = inst.channels
                for name in (inst.last_channel, inst.last_touchpoint):
                    if name is not None:
                        names[id(name)] = name
                assert inst.start_event is inst.reached[0][1]
                for hit in inst.reached:
                    reached += 1
                    shared += id(hit) in own
    return {
        "name objects": len(names),
        "names": len(set(names.values())),
        "channel list objects": len(channel_lists),
        "channel lists": len(set(channel_lists.values())),
        "hits reached": reached,
        "of them the track's": shared,
    }


def test_a_restored_person_shares_names_hits_and_channel_lists_as_the_original_did() -> None:
    """A person restored after a restart took more than twice the memory of the same person
    built from its events: decoded JSON has a new string per name and a new tuple per hit."""
    events, truth = simulate(3)
    arrivals = late_arrivals(events, 3)
    half = arrivals[: len(arrivals) // 2]  # persons mid-journey, others ended, kept
    original = replay(half, person_of(truth), half[-1][0] - 2 * HOUR, MIN)
    restored = Run()
    for pid in original.core.persons():
        data = orjson.loads(orjson.dumps(original.core.snapshot_person(pid)))
        restored.core.restore_person(pid, data)
    live, again = _sharing(original.core), _sharing(restored.core)
    assert live["hits reached"] > 10 * live["channel lists"] > 10
    assert live["name objects"] == live["names"]
    assert live["of them the track's"] == live["hits reached"]
    # Restored journeys share one tuple per list of channels (live ones build their own).
    assert again["channel list objects"] == again["channel lists"] == live["channel lists"]
    assert {**again, "channel list objects": live["channel list objects"]} == live


def calls_before_a_late_merge(run: Run, first_half: bool, merge_at: float) -> None:
    """A customer's support issue (help page at 0, 48 h to a contact) and, under a phone
    number not yet linked to them, a call at 6 h that resolved at 20 h: hits that start no
    journey of their own. The link comes with a login at `merge_at` hours, past the late
    tolerance (24 h) of both calls."""
    if first_half:
        run.send("cust", run.event(0, "help_view", "app"))
        run.at(60)
        run.send("phone", run.event(6 * 60, "contact_queued", "call_center"))
        run.at(7 * 60)
        run.send(
            "phone", run.event(20 * 60, "contact_ended", "call_center", disposition="resolved")
        )
        run.at(21 * 60)
    else:
        run.at(merge_at * 60)
        run.out += run.core.move_person("phone", "cust")
        run.at(60 * 60)


@pytest.mark.parametrize("merge_at", [45, 50])  # before and after the time limit
def test_a_merge_takes_only_hits_within_the_tolerance_whether_or_not_restored(
    merge_at: float,
) -> None:
    """The calls' track started no journey, so only a restored core had filed it with the
    deadline wheel (and sealed it once its hits were a day old): a restart mid-stream decided
    whether a later merge joined them to the customer's issue, which then converted, or not
    (the chaos suite's SIGKILL of the journeys worker)."""

    def core() -> JourneyCore:
        return JourneyCore(load_definitions(SHIPPED), JourneySettings(late_tolerance_ms=24 * HOUR))

    original = Run(core())
    calls_before_a_late_merge(original, True, merge_at)
    restored = Run(core())
    for pid in original.core.take_dirty():
        data = original.core.snapshot_person(pid)
        if data is not None:
            restored.core.restore_person(pid, orjson.loads(orjson.dumps(data)))
    restored.core.restore_watermark(original.core.watermark_ms)
    restored.seq = original.seq
    original.out.clear()
    calls_before_a_late_merge(original, False, merge_at)
    calls_before_a_late_merge(restored, False, merge_at)
    assert restored.out == original.out
    journey = original.only()
    assert (journey.person_id, journey.status, stages(journey)) == (
        "cust",
        "dropped_off",
        ["issue"],
    )
    assert original.of(Retraction) == []


# -- cold persons -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 11])
def test_freezing_cold_persons_changes_no_output(seed: int) -> None:
    """Persons with no open journey, session or buffered event are kept as their snapshot
    from the checkpoint that finds them so, and thawed by a late event, a new journey or a
    sealing time: every output is the same as a core that keeps them all as objects."""
    events, truth = simulate(seed)
    arrivals = late_arrivals(events, seed)
    closes = arrivals[-1][0] + 80 * HOUR
    plain = replay(arrivals, person_of(truth), closes, MIN)
    freezing = replay(arrivals, person_of(truth), closes, MIN, checkpoint_every=50)
    assert freezing.out == plain.out
    assert freezing.core.counters["thawed"] > 50
    assert outcomes(freezing) == outcomes(plain)


def test_a_frozen_persons_checkpoint_is_its_snapshot_and_restores() -> None:
    """A frozen person's checkpoint is its snapshot, encoded already; with an event buffered
    since it froze, the snapshot with that event; both restore to a core that goes on exactly
    like the original."""
    events, truth = simulate(3)
    arrivals = late_arrivals(events, 3)
    half = arrivals[: len(arrivals) // 2]
    original = replay(half, person_of(truth), half[-1][0] - 2 * HOUR, MIN)
    written = checkpoint(original.core)
    cold = [pid for pid, v in written.items() if isinstance(v, bytes)]
    assert len(cold) == frozen(original.core) > 10
    for pid in cold:
        assert orjson.loads(written[pid]) == orjson.loads(
            orjson.dumps(original.core.snapshot_person(pid))
        )
    # An event of a frozen person, ahead of time: buffered, and the person stays frozen.
    pid = cold[0]
    ahead = {**original.event(0, "page_view"), "occurred_at": "2100-01-01T00:00:00+00:00"}
    original.core.observe(ahead, pid)
    (again,) = checkpoint(original.core).values()
    assert isinstance(again, dict) and again["pending"][0][1] == ahead["event_id"]
    assert original.core._people[pid].frozen is not None
    restored = Run()
    for p in original.core.persons():
        data = orjson.loads(orjson.dumps(original.core.snapshot_person(p)))
        restored.core.restore_person(p, data)
    restored.core.restore_watermark(original.core.watermark_ms)
    assert frozen(restored.core) == frozen(original.core) - 1  # the one with an event buffered
    rest = arrivals[len(arrivals) // 2 :]
    original.out.clear()
    for run in (original, restored):
        for _arrival, event in rest:
            person = person_of(truth)[next(f"{k}:{v}" for k, v in event["identity"].items())]
            run.send(person, event)
            run.out += run.core.advance_watermark(event_ms(event["occurred_at"]) - MIN)
    assert restored.out == original.out


@pytest.mark.parametrize("merge_at", [23, 45])
def test_a_merge_of_frozen_persons_gives_what_it_gives_live(merge_at: float) -> None:
    """The calls' person is cold (its calls started no journey) when the link comes: it is
    thawed into the customer, as kept live."""

    def core() -> JourneyCore:
        return JourneyCore(load_definitions(SHIPPED), JourneySettings(late_tolerance_ms=24 * HOUR))

    live, freezing = Run(core()), Run(core())
    for run in (live, freezing):
        calls_before_a_late_merge(run, True, merge_at)
        run.at(22 * 60, late_minutes=22 * 60)  # the calls' session closes
    checkpoint(freezing.core)
    assert freezing.core._people["phone"].frozen is not None
    for run in (live, freezing):
        run.out.clear()
        calls_before_a_late_merge(run, False, merge_at)
    assert freezing.out == live.out
    assert freezing.core.counters["thawed"] >= 1


def test_a_person_whose_hits_start_no_journey_is_forgotten_after_the_tolerance() -> None:
    """Calls with no help page before them fold into a track that starts no journey; once
    their hits pass the late tolerance the track is sealed and the person leaves memory (it
    stayed for good before, unless a restore filed it with the deadline wheel)."""
    run = Run(JourneyCore(load_definitions(SHIPPED), JourneySettings(late_tolerance_ms=24 * HOUR)))
    run.send("phone", run.event(6 * 60, "contact_queued", "call_center"))
    run.at(7 * 60)
    assert "phone" in run.core.persons()
    # Both clocks past the call and the tolerance (its session closes on the late one).
    run.at(3 * 24 * 60, late_minutes=2 * 24 * 60)
    assert "phone" not in run.core.persons()
    assert not [o for o in run.out if not isinstance(o, SessionRecord)]  # no journey


@pytest.mark.parametrize("merge_at", [45, 50])
def test_a_merge_takes_the_same_hits_however_far_time_had_moved_when_it_came(
    merge_at: float,
) -> None:
    """The link's own time (the login at `merge_at` hours) bounds the calls a merge takes,
    not how far this partition's time had moved when the merge was read: after a restart
    of the identity stage, merges are read well ahead of the `stitched` backlog, and the
    customer's issue converted by day-old calls only in that run (chaos suite, SIGKILL of the
    identity worker)."""

    def run(read_at: float) -> Run:
        r = Run(
            JourneyCore(load_definitions(SHIPPED), JourneySettings(late_tolerance_ms=24 * HOUR))
        )
        calls_before_a_late_merge(r, True, merge_at)
        r.at(read_at * 60)
        r.out += r.core.move_person("phone", "cust", at_ms=T0_MS + round(merge_at * HOUR))
        r.at(merge_at * 60)
        r.at(60 * 60)
        return r

    early, on_time = run(read_at=22), run(read_at=merge_at)
    assert early.journeys() == on_time.journeys()
    journey = on_time.only()
    assert (journey.status, stages(journey)) == ("dropped_off", ["issue"])


def test_buffered_events_of_a_person_restored_over_or_dropped_are_not_applied() -> None:
    # Their release entries stay filed in the wheel; they must wake nothing.
    run = Run()
    run.send("p1", run.event(0, "home_view"))
    run.send("p2", run.event(0, "home_view"))
    run.core.restore_person("p1", {"v": 1, "tracks": [], "sessions": [], "pending": []})
    run.core.drop_person("p2")
    assert run.at(60) == []
    run.send("p1", run.event(61, "home_view"))
    run.at(62)
    assert stages(run.only()) == ["discover"]  # the restored person itself goes on


def test_dirty_persons_are_reported_once() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"))
    run.send("p2", run.event(0, "help_view"))
    assert run.core.take_dirty() == {"p1", "p2"}
    assert run.core.take_dirty() == set()
    run.at(1)
    assert run.core.take_dirty() == {"p1", "p2"}


def test_ended_journeys_are_forgotten_after_the_late_tolerance() -> None:
    run = Run(JourneyCore(load_definitions(SHIPPED), JourneySettings(late_tolerance_ms=HOUR)))
    run.send("p1", run.event(0, "help_view"))
    run.at(48 * 60)
    assert run.core.persons() == ["p1"]
    run.at(48 * 60 + 2 * 60 + 60 - 1)  # drop-off + reopen window + tolerance, not yet
    assert run.core.persons() == ["p1"]
    run.at(48 * 60 + 2 * 60 + 60)
    assert run.core.persons() == [] and run.core.snapshot_person("p1") is None
    assert "p1" in run.core.take_dirty()


def test_instance_ids_name_the_definition_and_its_version() -> None:
    one = compile_definition(spec(), 0)
    two = compile_definition(spec(version=2), 0)
    assert journey_id(one, "e1") != journey_id(two, "e1")
    assert journey_id(one, "e1") == str(
        uuid.uuid5(uuid.UUID("6f1c3a2e-2b0d-5c43-9a57-0e4c7d1b8f20"), "flow\x1f1\x1fe1")
    )
    space = uuid.UUID("6f1c3a2e-2b0d-5c43-9a57-0e4c7d1b8f20")
    names = ["x", "", "é", *(f"name-{i}" for i in range(300))]  # every variant digit
    assert [uuid5(namespace(space), n) for n in names] == [str(uuid.uuid5(space, n)) for n in names]


# -- the deadline wheel -----------------------------------------------------------------------


def test_the_wheel_visits_only_what_is_due() -> None:
    # Plain `Timed` items (compiled, it cannot be subclassed here): their due time is the
    # key of `due`.
    wheel: DeadlineWheel[Timed] = DeadlineWheel(resolution_ms=1_000)
    due = {Timed(): 10_000_000 + i for i in range(50_000)}
    near = {Timed(): 5_000 + i for i in range(10)}
    due.update(near)
    for item, ms in due.items():
        wheel.schedule(item, ms)
    assert wheel.pop_due(4_999) == []
    popped = wheel.pop_due(5_500)  # the bucket [5000, 6000) comes out whole
    assert sorted(due[i] for i in popped) == sorted(near.values())
    assert len(wheel) == 50_000
    assert all(i.wake_ms == NEVER for i in popped)


def test_moving_a_deadline_earlier_files_it_again_later_does_not() -> None:
    wheel: DeadlineWheel[Timed] = DeadlineWheel(resolution_ms=10)
    item = Timed()
    wheel.schedule(item, 1_000)
    wheel.schedule(item, 2_000)
    assert len(wheel) == 1
    wheel.schedule(item, 500)
    assert len(wheel) == 2 and wheel.pop_due(500) == [item]


def test_never_is_an_unboxed_int_when_compiled() -> None:
    # mypyc holds ints in [-2**62, 2**62) unboxed; outside it each comparison is a call.
    assert NEVER == 2**62 - 1 and -NEVER >= -(2**62)


# -- the per-event shortcuts ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2025-03-01T10:15:00.123Z",
        "2025-03-01T10:15:00.123456Z",
        "2025-03-01T10:15:00Z",
        "2025-03-01T10:15:00+00:00",
        "2025-03-01T10:15:00.123+00:00",
        "1969-12-31T23:59:59.999Z",
        "2025-03-01T10:15:00.1Z",
        "2025-03-01T10:15:00.1234567Z",
        "2025-03-01T10:15:00,123Z",
        "2025-03-01T12:15:00.123+02:00",
        "2025-03-01 10:15:00.123Z",
        "20250301T101500Z",
        "2025-03-01T10:15:00.123",
        "2025-03-01T10:15:00",
        "2025-03-01T10:15:00.12٣Z",
        "2025-03-01T10:15:00.1_2Z",
        "2025-03-01T24:00:00Z",
        "2025-02-30T10:15:00Z",
        "",
        "x",
        "2025-03-01T10:15:59.999Z",
        "2025-03-01T10:15:60Z",
        "2025-03-01T10:15:7٣Z",
        "2025-03-01T10:15:٣1Z",
        "2025-03-01T10:15:+1Z",
        "2025-03-01T10:15: 1Z",
        1_740_824_100_123,
        T0,
        T0.replace(tzinfo=None),
    ],
)
def test_event_times_read_like_event_ms(value: Any) -> None:
    def read(parse: Any) -> tuple[str, Any]:
        try:
            return "ok", parse(value)
        except ValueError as exc:
            return "error", type(exc)

    expected = read(event_ms)
    warm = EventTimes()  # knows the minute: a new second in it is arithmetic
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            warm.ms(value[:16] + ":00Z")
    for times in (EventTimes(), EventTimes(limit=1), warm):
        for _ in range(2):  # the second read takes the cached path
            assert read(times.ms) == expected


def test_every_record_lists_all_its_fields() -> None:
    """The record builders bypass the named tuples' own constructors."""
    run = Run(JourneyCore(load_definitions(SHIPPED), JourneySettings(late_tolerance_ms=HOUR)))
    run.send("p1", run.event(0, "home_view"), run.event(10, "page_view"))
    run.at(25 * 60)  # the purchase journey drops off
    run.send("p1", run.event(24 * 60 + 30, "pos_purchase", "store"))  # late: reopens it
    run.send("p2", run.event(0, "home_view"))  # more than the tolerance behind: rejected
    run.at(26 * 60)
    kinds = {type(o) for o in run.out}
    assert kinds == {JourneyUpdate, StageTransition, DropOff, Retraction, SessionRecord, Rejected}
    for record in run.out:
        assert len(record) == len(type(record)._fields), record
        assert type(record)(*record) == record


@pytest.mark.parametrize("buffered", [1, 3])
def test_buffered_events_survive_a_snapshot(buffered: int) -> None:
    original = Run()
    original.send("p1", original.event(0, "home_view"))
    original.at(1)
    events = [original.event(2 + i, "product_view") for i in range(buffered)]
    original.send("p1", *reversed(events))  # out of order: released sorted
    data = orjson.loads(orjson.dumps(original.core.snapshot_person("p1")))
    assert [p[1] for p in data["pending"]] == [e["event_id"] for e in reversed(events)]
    restored = Run()
    restored.core.restore_person("p1", data)
    restored.core.restore_watermark(original.core.watermark_ms)
    original.out.clear()
    assert restored.at(3) == original.at(3)  # the first buffered event is due
    assert restored.at(60) == original.at(60)
    assert [t.event_id for t in original.of(StageTransition)] == [events[0]["event_id"]]


def test_the_census_counts_persons_open_journeys_and_buffered_events() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"))
    run.send("p2", run.event(0, "home_view"))
    run.at(1)
    assert run.core.census() == (2, 2, 0, 0)  # each person's purchase journey, nothing buffered
    run.send("p1", *(run.event(2 + i, "product_view") for i in range(3)))
    run.send("p3", run.event(2, "home_view"))
    assert run.core.census() == (3, 2, 4, 0)  # a list of three for p1, a single event for p3
    run.at(10)
    assert run.core.census() == (3, 3, 0, 0)
    assert run.core.open_journeys() == 3


def test_a_merge_joins_the_buffered_events_of_both_persons() -> None:
    run = Run()
    run.send("anon", run.event(0, "home_view"))
    run.send("cust", run.event(5, "product_view"))
    run.send("anon", run.event(10, "add_to_cart"))
    run.core.move_person("anon", "cust")
    run.at(20)
    (journey,) = run.journeys().values()
    assert (journey.person_id, stages(journey)) == ("cust", ["discover", "consider", "cart"])


# -- the simulator's ground truth -------------------------------------------------------------


def simulate(seed: int) -> tuple[list[dict[str, Any]], GroundTruth]:
    config = SimConfig(
        customers=150,
        days=3,
        seed=seed,
        start=T0,
        incidents=(Incident.parse("web:/checkout errors x8 @600m for 240m"),),
    )
    events, truth = Simulation(config, PiiHasher(PiiSettings())).run()
    return [e.event for e in events], truth


def late_arrivals(events: list[dict[str, Any]], seed: int) -> list[tuple[int, dict[str, Any]]]:
    """(arrival ms, event) in arrival order: call-center and store events 1-30 hours late,
    the others within a minute."""
    rng = random.Random(seed)
    arrivals = []
    for event in events:
        t = event_ms(event["occurred_at"])
        delay = rng.randrange(HOUR, 30 * HOUR) if event["channel"] in LATE else rng.randrange(MIN)
        arrivals.append((t + delay, event))
    arrivals.sort(key=lambda pair: pair[0])
    return arrivals


def person_of(truth: GroundTruth) -> dict[str, str]:
    return {i: p.person for p in truth.persons for i in p.identifiers}


def replay(
    events: Iterable[tuple[int, dict[str, Any]]],
    owner: dict[str, str],
    closes_ms: int,
    lateness_ms: int,
    checkpoint_every: int = 0,
) -> Run:
    """Feed events in arrival order; the watermark follows the timely channels. With
    `checkpoint_every`, the changed persons are checkpointed as a stage's transaction does,
    after every that many events (cold ones are frozen)."""
    run = Run()
    high = -NEVER
    for n, (_arrival, event) in enumerate(events, 1):
        person = owner[next(f"{k}:{v}" for k, v in event["identity"].items())]
        run.send(person, event)
        if event["channel"] not in LATE:
            high = max(high, event_ms(event["occurred_at"]))
            run.out += run.core.advance_watermark(high - lateness_ms)
        if checkpoint_every and n % checkpoint_every == 0:
            checkpoint(run.core)
    run.out += run.core.advance_watermark(closes_ms, closes_ms)
    return run


def checkpoint(core: JourneyCore) -> dict[str, Any]:
    """What a stage's transaction writes of the persons changed since the last: checkpoints,
    which freeze the cold ones."""
    return {pid: core.checkpoint(pid) for pid in core.take_dirty()}


def frozen(core: JourneyCore) -> int:
    return core.census().frozen_persons


def outcomes(run: Run) -> Counter[tuple[str, str, tuple[str, ...], str]]:
    return Counter(
        (j.person_id, j.definition_id, tuple(stages(j)), j.status)
        for j in run.journeys().values()
        if j.status != "merged"
    )


def truth_outcomes(truth: GroundTruth) -> Counter[tuple[str, str, tuple[str, ...], str]]:
    return Counter(
        (j.person, j.definition, tuple(s.stage for s in j.stages), str(j.outcome))
        for j in truth.journeys
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_the_simulators_outcomes_in_event_time_order(seed: int) -> None:
    events, truth = simulate(seed)
    closes = event_ms(truth.closes_at) + 80 * HOUR
    run = replay(((0, e) for e in events), person_of(truth), closes, 0)
    assert outcomes(run) == truth_outcomes(truth)
    drops = Counter((d.person_id, d.stage, d.deadline_ms) for d in run.of(DropOff))
    want = Counter(
        (j.person, j.dropped_stage, event_ms(j.dropped_at)) for j in truth.journeys if j.dropped_at
    )
    assert drops == want and not run.of(Retraction)


@pytest.mark.parametrize("seed", [3, 4])
def test_the_simulators_outcomes_with_late_call_center_and_store_batches(seed: int) -> None:
    events, truth = simulate(seed)
    arrivals = late_arrivals(events, seed)
    closes = event_ms(truth.closes_at) + 80 * HOUR
    run = replay(arrivals, person_of(truth), closes, 2 * MIN)
    assert outcomes(run) == truth_outcomes(truth)
    retracted = {r.retracted_id for r in run.of(Retraction)}
    assert retracted, "late batches should have contradicted some drop-offs"
    standing = Counter(
        (d.person_id, d.stage, d.deadline_ms)
        for d in run.of(DropOff)
        if d.dropoff_id not in retracted
    )
    want = Counter(
        (j.person, j.dropped_stage, event_ms(j.dropped_at)) for j in truth.journeys if j.dropped_at
    )
    assert standing == want
