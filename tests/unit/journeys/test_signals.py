"""The friction signals a journey met (`core/journey_signals.py`): which signals an event
has, the labels a journey keeps (bounded, the most recent), the drop-off that carries them,
its row, and snapshots written before journeys kept them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.definitions import load_definitions
from schemas.friction import load_friction_mapping
from stream_processors.core.friction_signals import FrictionMatcher
from stream_processors.journeys.core.engine import JourneyCore
from stream_processors.journeys.core.outputs import DropOff
from stream_processors.journeys.core.settings import DEFAULT_FRICTION, friction_by_properties
from stream_processors.journeys.core.signals import (
    MAX_LABELS,
    label,
    label_text,
    mapped_signals,
    remember,
    stated_signals,
)
from stream_processors.journeys.rows import dropoff_row
from tests.unit.friction.test_stage import DEFAULTS
from tests.unit.journeys.test_core import SHIPPED, Run

CHECKOUT_DECLINED = "payment_declined@web:/checkout_step"


def v2(run: Run, minutes: float, event_type: str, **fields: Any) -> dict[str, Any]:
    """A version 2 web event with a typed block or stated friction (`fields`)."""
    return {**run.event(minutes, event_type), "schema_version": 2, **fields}


def dropped(run: Run) -> DropOff:
    run.at(25 * 60)
    drops: list[DropOff] = run.of(DropOff)
    (drop,) = drops
    return drop


# -- labels ------------------------------------------------------------------------------------


def test_labels_name_the_signal_and_its_place() -> None:
    assert label("payment_declined", "web", "/checkout") == "payment_declined@web:/checkout"
    assert label("app_crash", "app", None) == "app_crash@app"
    assert label_text("payment_declined@web:/checkout") == "payment_declined at web:/checkout"
    assert label_text("app_crash@app") == "app_crash at app"


def test_remember_keeps_the_most_recent_distinct_labels_within_the_bound() -> None:
    kept = None
    for n in range(MAX_LABELS + 3):
        kept = remember(kept, (f"s{n}@web",))
    assert kept == tuple(f"s{n}@web" for n in range(3, MAX_LABELS + 3))
    again = remember(kept, ("s4@web",))  # met again: now the most recent, still once
    assert again[-1] == "s4@web" and len(again) == MAX_LABELS and again.count("s4@web") == 1
    assert remember(again, ("s4@web",)) is again  # the same as the last: nothing to build


# -- which signals an event has ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "signals"),
    [
        ({"properties": {"error": "http_500"}}, ("error",)),
        ({"properties": {"error": "payment_declined"}}, ("payment_declined",)),
        ({"properties": {"rage_click": "true", "transferred": True}}, ("rage_click", "transfer")),
        ({"properties": {"error": "false", "out_of_stock": 0}}, ()),
        ({"web": {"http_status": 503}}, ("error",)),
        ({"friction": [{"signal": "payment_declined"}]}, ("payment_declined",)),
        # Stated and found in properties: once.
        ({"web": {"http_status": 500}, "properties": {"error": "http_500"}}, ("error",)),
        ({"web": {"http_status": 200, "rage_clicks": 0}}, ()),
    ],
)
def test_default_signals_read_properties_typed_blocks_and_stated_friction(
    event: dict[str, Any], signals: tuple[str, ...]
) -> None:
    base = {"channel": "web", "event_type": "checkout_step", **event}
    assert stated_signals(DEFAULT_FRICTION)(base) == signals
    assert friction_by_properties(DEFAULT_FRICTION)(base) is bool(signals)


def test_mapped_signals_are_the_friction_stages() -> None:
    signals_of = mapped_signals(FrictionMatcher(load_friction_mapping(DEFAULTS)))
    declined = {"channel": "web", "event_type": "Payment Failed", "properties": {}}
    assert signals_of(declined) == ("payment_declined",)
    crashed = {"channel": "app", "event_type": "screen", "app": {"crash": True}}
    assert signals_of(crashed) == ("app_crash",)
    # Positive moments are not friction; a plain event costs a plan lookup.
    assert signals_of({"channel": "web", "event_type": "Order Completed"}) == ()
    assert signals_of({"channel": "web", "event_type": "page_view", "properties": {}}) == ()


# -- journeys ----------------------------------------------------------------------------------


def test_a_drop_off_carries_the_signals_its_journey_met() -> None:
    run = Run()
    run.send(
        "p1",
        run.event(0, "home_view"),
        run.event(1, "checkout_step", error="payment_declined"),
        run.event(2, "checkout_step", error="payment_declined"),  # the same again: once
        v2(run, 3, "page_view", web={"http_status": 502}),
        v2(run, 4, "page_view", friction=[{"signal": "rage_click"}]),
        v2(run, 5, "help_view", friction=[{"signal": "rage_click"}]),  # support's, not its own
    )
    drop = dropped(run)
    assert drop.signals == (
        CHECKOUT_DECLINED,
        "error@web:/page_view",
        "rage_click@web:/page_view",
    )
    assert drop.friction == 4  # events with friction, each once
    row = orjson.loads(dropoff_row(drop))
    assert row["signals"] == list(drop.signals)


def test_a_journey_keeps_at_most_the_most_recent_labels() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"))
    pages = [f"/p{n}" for n in range(MAX_LABELS + 2)]
    for n, page in enumerate(pages):
        event = run.event(1 + n, "page_view", error="http_500")
        run.send("p1", {**event, "touchpoint": page})
    drop = dropped(run)
    assert drop.signals == tuple(f"error@web:{p}" for p in pages[-MAX_LABELS:])


def test_events_without_friction_leave_no_labels() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"), run.event(1, "page_view"))
    assert dropped(run).signals == ()


def test_a_predicate_counts_friction_without_naming_it() -> None:
    core = JourneyCore(load_definitions(SHIPPED), is_friction=lambda e: "boom" in e["properties"])
    run = Run(core)
    run.send("p1", run.event(0, "home_view"), run.event(1, "page_view", boom=1))
    drop = dropped(run)
    assert (drop.friction, drop.signals) == (1, ("friction@web:/page_view",))


def test_labels_survive_a_late_event_that_folds_the_journey_again() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"), run.event(10, "add_to_cart", error="http_500"))
    run.at(60)
    # A product view from before arrives late: the journey is folded again from its hits.
    run.send("p1", run.event(5, "product_view", "app"))
    assert run.core.counters["refolds"] == 1
    assert dropped(run).signals == ("error@web:/add_to_cart",)


def test_an_identity_merge_joins_the_labels_of_both_journeys() -> None:
    run = Run()
    run.send("anon", run.event(0, "home_view"), run.event(10, "product_view", error="http_500"))
    run.send("cust", run.event(5, "search", rage_click=True), run.event(20, "add_to_cart"))
    run.at(30)
    run.out += run.core.move_person("anon", "cust")
    drop = dropped(run)
    assert drop.person_id == "cust"
    assert sorted(drop.signals) == ["error@web:/product_view", "rage_click@web:/search"]


# -- snapshots ---------------------------------------------------------------------------------


def snapshot(run: Run) -> dict[str, Any]:
    data = run.core.snapshot_person("p1")
    assert data is not None
    return dict(orjson.loads(orjson.dumps(data)))


def restored_from(data: dict[str, Any], seq: int, watermark: int) -> Run:
    run = Run()
    run.core.restore_person("p1", data)
    run.core.restore_watermark(watermark)
    run.seq = seq
    return run


def test_a_snapshot_keeps_the_labels() -> None:
    run = Run()
    run.send(
        "p1", run.event(0, "home_view"), run.event(1, "checkout_step", error="payment_declined")
    )
    run.at(2)
    again = restored_from(snapshot(run), run.seq, run.core.watermark_ms)
    assert dropped(again).signals == (CHECKOUT_DECLINED,)


def test_a_snapshot_written_before_journeys_kept_labels_still_restores() -> None:
    run = Run()
    run.send("p1", run.event(0, "home_view"), run.event(1, "page_view", error="http_500"))
    run.at(2)
    data = snapshot(run)
    for track in data["tracks"]:
        for row in track["i"]:
            assert len(row) == 21
            del row[19:]  # the instance row as it was before `signals`
    again = restored_from(data, run.seq, run.core.watermark_ms)
    again.send("p1", again.event(3, "checkout_step", error="payment_declined"))
    drop = dropped(again)
    assert (drop.signals, drop.friction) == ((CHECKOUT_DECLINED,), 2)
