"""Friction signals: the mapping file loads (or fails naming file, line and key), and the
shipped defaults turn what our producers really emit into the right signals and exposures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from producers.adapters.contact_center import derive_contact
from producers.adapters.pos import derive_sale
from producers.collector.auth import Source
from producers.collector.scrub import Scrubber
from producers.collector.segment import Received, to_touchpoint
from producers.simulator.catalog import FRICTION
from schemas.config_files import ConfigFileError
from schemas.friction import FrictionMapping, Signal, load_friction_mapping
from schemas.touchpoint import Channel, Touchpoint
from stream_processors.core.friction_signals import (
    FrictionMatcher,
    RepeatContacts,
    event_signals,
    normalized,
    typed_signals,
)
from tests.unit.producers.adapters.builders import (
    HASHER,
    contact,
    contact_mapping,
    pos_mapping,
    sale,
)

ROOT = Path(__file__).resolve().parents[3]
DEFAULTS = ROOT / "deploy" / "friction" / "defaults.toml"
FIXTURES = ROOT / "tests" / "fixtures" / "contracts" / "v1"
FIXTURES_V2 = ROOT / "tests" / "fixtures" / "contracts" / "v2"
MATCHER = FrictionMatcher(load_friction_mapping(DEFAULTS))
WEB = Source("wk_web", "web-shop", Channel.WEB)
APP = Source("wk_app", "shop-app", Channel.APP)
SCRUBBER = Scrubber(HASHER)
DAY_MS = 86_400_000


def wire(event: Touchpoint) -> dict[str, Any]:
    """A touchpoint as a stage reads it from Kafka."""
    return event.model_dump(mode="json")


def event(channel: str, event_type: str, **properties: Any) -> dict[str, Any]:
    return {"channel": channel, "event_type": event_type, "properties": properties}


def classify(doc: dict[str, Any]) -> tuple[bool, tuple[Signal, ...]]:
    return MATCHER.classify(doc)


# -- the shipped defaults, on what our producers emit ------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "exposure", "signals"),
    [
        ("web_checkout_error.json", False, (Signal.ERROR,)),
        ("app_crash.json", False, (Signal.APP_CRASH,)),
        ("web_page_view.json", True, ()),  # load_ms 840 is not slow
        ("app_screen_view.json", True, ()),
        ("call_center_contact_abandoned.json", False, (Signal.LONG_QUEUE_WAIT,)),
        ("call_center_contact_ended.json", True, (Signal.TRANSFER,)),  # handled in 370 s
        ("call_center_contact_queued.json", False, ()),
        ("store_return.json", True, (Signal.STORE_RETURN,)),
        ("store_purchase.json", True, (Signal.ORDER_COMPLETED,)),
        ("store_loyalty_scan.json", True, ()),
    ],
)
def test_contract_fixtures(fixture: str, exposure: bool, signals: tuple[Signal, ...]) -> None:
    doc = json.loads((FIXTURES / fixture).read_text())
    assert classify(doc) == (exposure, signals)


def track(**fields: Any) -> dict[str, Any]:
    """A track call as a server library sends it."""
    return {
        "type": "track",
        "userId": "user-1",
        "messageId": "msg-1",
        "timestamp": "2025-03-01T11:59:00+00:00",
        "context": {"library": {"name": "analytics-python"}},
        **fields,
    }


def segment(call: dict[str, Any], source: Source = WEB) -> dict[str, Any]:
    """A Segment call as the collector maps it (flattened properties, lists as JSON)."""
    rx = Received(source, datetime(2025, 3, 1, 12, tzinfo=UTC), timedelta(minutes=5))
    return wire(to_touchpoint(call, "track", rx, SCRUBBER).event)


@pytest.mark.parametrize(
    ("name", "properties", "signals"),
    [
        ("Payment Failed", {"order_id": "o1", "reason": "declined"}, (Signal.PAYMENT_DECLINED,)),
        ("Product List Viewed", {"list_id": "s", "products": []}, (Signal.SEARCH_NO_RESULTS,)),
        ("Product List Viewed", {"products": [{"sku": "a"}]}, ()),
        ("Products Searched", {"query": "hotpants", "results": 0}, (Signal.SEARCH_NO_RESULTS,)),
        ("Products Searched", {"query": "hotpants", "results": 12}, ()),
        ("Order Completed", {"order_id": "o1", "revenue": 25.0}, (Signal.ORDER_COMPLETED,)),
        ("Checkout Step Viewed", {"step": 2, "timing": {"load_ms": 4200}}, ()),
        ("Checkout Step Viewed", {"step": 2, "load_ms": 4200}, (Signal.SLOW_RESPONSE,)),
    ],
)
def test_segment_ecommerce_spec(
    name: str, properties: dict[str, Any], signals: tuple[Signal, ...]
) -> None:
    assert classify(segment(track(event=name, properties=properties)))[1] == signals


def test_segment_mobile_crash_is_an_app_crash_and_no_exposure() -> None:
    call = track(
        event="Application Crashed",
        properties={"exception": "NullPointerException"},
        context={"library": {"name": "analytics-android"}, "device": {"id": "d1"}},
    )
    doc = segment(call, APP)
    assert doc["channel"] == "app"
    assert classify(doc) == (False, (Signal.APP_CRASH,))
    opened = segment({**call, "event": "Application Opened", "properties": {}}, APP)
    backgrounded = segment({**call, "event": "Application Backgrounded", "properties": {}}, APP)
    assert classify(opened) == (True, ())
    assert classify(backgrounded) == (False, ())


def test_contact_center_adapter_one_signal_of_a_kind_per_contact() -> None:
    mapping = contact_mapping()
    abandoned = derive_contact(contact(answered="", code="ABN", agent=""), mapping, HASHER)
    found = [classify(wire(e)) for e in abandoned]
    signals = [s for _, sigs in found for s in sigs]
    # Waited 12 minutes and nobody answered: one abandoned call, one long wait, one exposure.
    assert sorted(signals) == sorted([Signal.ABANDONED_CALL, Signal.LONG_QUEUE_WAIT])
    assert sum(exposure for exposure, _ in found) == 1
    transferred = derive_contact(contact(transfers="3"), mapping, HASHER)
    signals = [s for e in transferred for s in classify(wire(e))[1]]
    assert signals == [Signal.TRANSFER]  # three transfers are one transferred contact
    quick = derive_contact(contact(ended="2025-03-03T09:05:00+00:00"), mapping, HASHER)
    assert [s for e in quick for s in classify(wire(e))[1]] == [Signal.FAST_RESOLUTION]


def test_an_unmapped_abandoned_disposition_reads_without_case() -> None:
    # An export published without a value map keeps its own code, e.g. ABANDONED.
    ended = event("call_center", "contact_ended", disposition="ABANDONED", answered=None)
    assert classify(ended) == (True, (Signal.ABANDONED_CALL,))


def test_pos_adapter_returns_and_purchases() -> None:
    mapping = pos_mapping()
    (returned,) = derive_sale(sale(kind="R"), mapping, HASHER)
    (bought,) = derive_sale(sale(), mapping, HASHER)
    assert classify(wire(returned)) == (True, (Signal.STORE_RETURN,))
    assert classify(wire(bought)) == (True, (Signal.ORDER_COMPLETED,))


@pytest.mark.parametrize(
    ("channel", "key", "value"),
    [(channel, key, value) for channel, pairs in FRICTION.items() for key, value in pairs],
)
def test_every_simulator_friction_property_is_a_signal(channel: str, key: str, value: str) -> None:
    # The simulator attaches friction to a stage's own events, which stay exposures.
    stage_event = {
        "web": "checkout_step",
        "app": "checkout_step",
        "store": "pos_purchase",
        "call_center": "contact_queued",
    }[channel]
    exposure, signals = classify(event(channel, stage_event, **{key: value}))
    friction = [s for s in signals if not s.positive]
    assert len(friction) == 1, signals
    assert exposure is (channel != "call_center")


def test_simulator_error_values_map_to_distinct_signals() -> None:
    assert classify(event("web", "checkout_step", error="http_500"))[1] == (Signal.ERROR,)
    web_decline = classify(event("web", "checkout_step", error="payment_declined"))[1]
    assert web_decline == (Signal.PAYMENT_DECLINED,)
    assert classify(event("app", "checkout_step", error="crash"))[1] == (Signal.APP_CRASH,)


def test_events_with_many_properties_are_matched_too() -> None:
    # Past the number of indexed property names, the matcher walks the index instead.
    many = {f"p{n}": n for n in range(40)}
    assert classify(event("web", "page_view", **many, http_status=500)) == (True, (Signal.ERROR,))
    assert classify(event("web", "page_view", **many)) == (True, ())


def test_two_rules_for_one_signal_count_it_once() -> None:
    doc = event("web", "error", http_status=502, error="timeout")
    assert classify(doc) == (False, (Signal.ERROR,))


# -- schema_version 2: typed blocks and stated signals -------------------------------------------


def v2(
    channel: str, event_type: str, block: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A version 2 event as a stage reads it: `block` is its channel's typed block."""
    doc = {"channel": channel, "event_type": event_type, "schema_version": 2, **fields}
    if block is not None:
        doc[channel] = block
    return doc


@pytest.mark.parametrize(
    ("fixture", "exposure", "signals"),
    [
        ("web_page_view.json", True, (Signal.SLOW_RESPONSE,)),  # load_ms 4210.5, by the mapping
        (
            "web_checkout_error.json",
            True,
            (
                Signal.ERROR,
                Signal.RETRY,
                Signal.PAYMENT_DECLINED,
                Signal.RAGE_CLICK,
                Signal.DEAD_CLICK,
            ),
        ),
        ("web_search.json", True, (Signal.SEARCH_NO_RESULTS,)),
        ("app_crash.json", False, (Signal.APP_CRASH,)),
        ("app_api_call.json", True, (Signal.ERROR, Signal.SLOW_RESPONSE)),
        ("call_center_contact_answered.json", False, (Signal.LONG_QUEUE_WAIT,)),
        (
            "call_center_contact_ended.json",
            True,
            (
                Signal.TRANSFER,
                Signal.REPEAT_CONTACT,
                Signal.FAST_RESOLUTION,
                Signal.HIGH_SURVEY_SCORE,
            ),
        ),
        (
            "call_center_contact_abandoned.json",
            True,
            (Signal.ABANDONED_CALL, Signal.LONG_QUEUE_WAIT),
        ),
        ("store_purchase.json", True, (Signal.ORDER_COMPLETED, Signal.LONG_TILL_WAIT)),
        ("store_return.json", True, (Signal.STORE_RETURN,)),
        ("store_visit_out_of_stock.json", True, (Signal.OUT_OF_STOCK, Signal.LOW_SURVEY_SCORE)),
    ],
)
def test_contract_fixtures_of_version_2(
    fixture: str, exposure: bool, signals: tuple[Signal, ...]
) -> None:
    doc = wire(Touchpoint.model_validate_json((FIXTURES_V2 / fixture).read_bytes()))
    assert classify(doc) == (exposure, signals)


@pytest.mark.parametrize(
    ("channel", "field", "value", "signal"),
    [
        ("web", "http_status", 500, Signal.ERROR),
        ("web", "http_status", 599, Signal.ERROR),
        ("web", "http_status", 404, None),
        ("web", "rage_clicks", 1, Signal.RAGE_CLICK),
        ("web", "rage_clicks", 0, None),
        ("web", "dead_clicks", 2, Signal.DEAD_CLICK),
        ("web", "search_results", 0, Signal.SEARCH_NO_RESULTS),
        ("web", "search_results", 3, None),
        ("app", "http_status", 503, Signal.ERROR),
        ("app", "crash", True, Signal.APP_CRASH),
        ("app", "crash", False, None),
        ("call_center", "abandoned", True, Signal.ABANDONED_CALL),
        ("call_center", "abandoned", False, None),
        ("call_center", "transfers", 2, Signal.TRANSFER),
        ("call_center", "transfers", 0, None),
        ("call_center", "repeat_contact", True, Signal.REPEAT_CONTACT),
        ("store", "is_return", True, Signal.STORE_RETURN),
        ("store", "is_return", False, None),
        ("store", "out_of_stock", True, Signal.OUT_OF_STOCK),
    ],
)
def test_typed_signal_fields(channel: str, field: str, value: Any, signal: Signal | None) -> None:
    doc = v2(channel, "interaction", {field: value})
    expected = () if signal is None else (signal,)
    assert typed_signals(doc) == expected
    assert classify(doc)[1] == expected  # no mapping rule fires on this made-up event type


def test_stated_signals_count_once_each_positive_ones_too() -> None:
    listed = [
        {"signal": "order_completed"},
        {"signal": "retry", "value": 2.0},
        {"signal": "retry", "detail": "again"},
        {"signal": "unheard_of"},
    ]
    doc = v2("web", "interaction", friction=listed)
    assert typed_signals(doc) == (Signal.ORDER_COMPLETED, Signal.RETRY)
    assert classify(doc) == (True, (Signal.ORDER_COMPLETED, Signal.RETRY))


@pytest.mark.parametrize(
    ("doc", "signal"),
    [
        # A mapped property, the typed field and a stated entry for one signal.
        (
            v2(
                "web",
                "page_view",
                {"http_status": 502},
                properties={"http_status": 502},
                friction=[{"signal": "error"}],
            ),
            Signal.ERROR,
        ),
        (v2("web", "error", {"http_status": 503}), Signal.ERROR),  # mapped event type too
        (v2("app", "crash", {"crash": True}, friction=[{"signal": "app_crash"}]), Signal.APP_CRASH),
        (
            v2(
                "call_center",
                "contact_ended",
                {"abandoned": True, "disposition": "abandoned"},
                properties={"answered": False},
            ),
            Signal.ABANDONED_CALL,
        ),
    ],
)
def test_a_signal_found_several_ways_counts_once(doc: dict[str, Any], signal: Signal) -> None:
    assert classify(doc)[1] == (signal,)


@pytest.mark.parametrize(
    ("channel", "event_type", "name", "value", "signal"),
    [
        ("web", "page_view", "load_ms", 4200, Signal.SLOW_RESPONSE),
        ("app", "screen_view", "response_ms", 3500.0, Signal.SLOW_RESPONSE),
        ("call_center", "contact_answered", "wait_seconds", 301.0, Signal.LONG_QUEUE_WAIT),
        ("call_center", "contact_ended", "disposition", "abandoned", Signal.ABANDONED_CALL),
        ("call_center", "contact_ended", "survey_score", 1, Signal.LOW_SURVEY_SCORE),
        ("store", "purchase_step", "wait_seconds", 600.0, Signal.LONG_TILL_WAIT),
    ],
)
def test_the_mapping_reads_typed_fields_like_properties(
    channel: str, event_type: str, name: str, value: Any, signal: Signal
) -> None:
    as_property = event(channel, event_type, **{name: value})
    as_typed = v2(channel, event_type, {name: value})
    assert signal in classify(as_property)[1]
    assert classify(as_typed) == classify(as_property)


def test_the_typed_value_wins_over_a_property_of_the_same_name() -> None:
    long_typed = v2(
        "call_center", "contact_answered", {"wait_seconds": 400.0}, properties={"wait_seconds": 100}
    )
    short_typed = v2(
        "call_center", "contact_answered", {"wait_seconds": 100.0}, properties={"wait_seconds": 400}
    )
    assert classify(long_typed)[1] == (Signal.LONG_QUEUE_WAIT,)
    assert classify(short_typed)[1] == ()


def test_a_version_1_event_states_nothing_and_classifies_as_before() -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        doc = json.loads(path.read_text())
        assert typed_signals(doc) == ()
        plan = MATCHER.plan(doc["channel"], doc["event_type"])
        assert event_signals(plan, doc) == classify(doc)[1]


@pytest.mark.parametrize(
    "kind", ["answered", "abandoned", "transferred", "quick", "sale", "return"]
)
def test_adapter_events_carry_their_signals_in_the_typed_block_alone(kind: str) -> None:
    records = {
        "answered": lambda: derive_contact(contact(), contact_mapping(), HASHER),
        "abandoned": lambda: derive_contact(
            contact(answered="", code="ABN", agent=""), contact_mapping(), HASHER
        ),
        "transferred": lambda: derive_contact(contact(transfers="3"), contact_mapping(), HASHER),
        "quick": lambda: derive_contact(
            contact(ended="2025-03-03T09:05:00+00:00"), contact_mapping(), HASHER
        ),
        "sale": lambda: derive_sale(sale(), pos_mapping(), HASHER),
        "return": lambda: derive_sale(sale(kind="R"), pos_mapping(), HASHER),
    }
    for produced in records[kind]():
        doc = wire(produced)
        typed_only = {**doc, "properties": {}}
        assert set(classify(typed_only)[1]) == set(classify(doc)[1]), doc["event_type"]
        assert classify(typed_only)[0] == classify(doc)[0]


# -- conditions ----------------------------------------------------------------------------------


def matcher(toml_rules: str, tmp_path: Path) -> FrictionMatcher:
    path = tmp_path / "team.toml"
    path.write_text(toml_rules)
    return FrictionMatcher(load_friction_mapping(path))


def test_condition_operators(tmp_path: Path) -> None:
    m = matcher(
        """
[[rule]]
signal = "rage_click"
when = [{ property = "flag", equals = true }]
[[rule]]
signal = "error"
when = [{ property = "code", in = [500, "E42"] }]
[[rule]]
signal = "retry"
when = [{ property = "attempt", gt = 1 }]
[[rule]]
signal = "low_survey_score"
when = [{ property = "csat", le = 2 }]
[[rule]]
signal = "dead_click"
events = ["click"]
when = [{ property = "target", present = false }]
[[rule]]
signal = "form_abandoned"
when = [{ property = "form", not_in = ["newsletter"] }]
""",
        tmp_path,
    )

    def signals(**props: Any) -> tuple[Signal, ...]:
        return m.signals_of(event("web", "x", **props))

    assert signals(flag=True) == signals(flag="TRUE ") == (Signal.RAGE_CLICK,)
    assert signals(flag="false") == signals(flag=1) == ()
    assert signals(code=500) == signals(code="500") == signals(code=500.0) == (Signal.ERROR,)
    assert signals(code="e42") == (Signal.ERROR,)
    assert signals(code=501) == ()
    assert signals(attempt="2") == signals(attempt=1.5) == (Signal.RETRY,)
    assert signals(attempt=1) == signals(attempt="n/a") == signals(attempt=True) == ()
    assert signals(csat=2) == (Signal.LOW_SURVEY_SCORE,) and signals(csat=3) == ()
    assert m.signals_of(event("web", "click")) == (Signal.DEAD_CLICK,)
    assert m.signals_of(event("web", "click", target="#buy")) == ()
    assert signals(form="checkout") == (Signal.FORM_ABANDONED,)
    assert signals(form="Newsletter") == signals() == ()  # absent is not "another value"
    assert signals(flag=True, code=500) == (Signal.RAGE_CLICK, Signal.ERROR)  # rule order


def test_normalized_values() -> None:
    assert normalized(True) == "true" and normalized(" Yes ") == "yes"
    assert normalized(3.0) == normalized("3") == normalized(3) == "3"
    assert normalized(0.5) == normalized("0.50") == "0.5"
    assert normalized("[]") == "[]" and normalized(None) is None


def test_a_team_file_extends_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text(
        """
[[rule]]
signal = "payment_declined"
channel = "web"
events = ["Card Refused"]

[[exposure]]
channel = "call_center"
events = ["contact_queued"]
"""
    )
    team = load_friction_mapping(path)
    merged = FrictionMatcher(load_friction_mapping(DEFAULTS).extended_by(team))
    assert merged.signals_of(event("web", "Card Refused")) == (Signal.PAYMENT_DECLINED,)
    assert merged.signals_of(event("web", "Payment Failed")) == (Signal.PAYMENT_DECLINED,)
    assert merged.is_exposure(event("call_center", "contact_queued"))
    assert not merged.is_exposure(event("call_center", "contact_ended"))
    assert not merged.is_exposure(event("web", "error"))  # the web exposure rule is kept


# -- loading errors --------------------------------------------------------------------------


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as caught:
        load_friction_mapping(path)
    assert str(path) in str(caught.value)
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def test_errors_name_the_line_and_key(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """version = 1

[[rule]]
signal = "error"
events = ["error"]

[[rule]]
signal = "payment_failed"
events = ["Payment Failed"]

[[rule]]
signal = "transfer"
when = [{ property = "transfers", ge = 1, le = 9 }]
colour = "red"
""",
    )
    assert found[0].startswith("8: rule[1].signal: Input should be 'error',")
    assert any(p.startswith("13: rule[2].when[0]: give exactly one of") for p in found)
    assert "14: rule[2].colour: unknown key (misspelt?)" in found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[rule]]\nsignal = "error"\n', "rule[0]: give `events`, `when` or both"),
        ('[[rule]\nsignal = "error"', "not valid TOML"),
        ('[[exposure]]\nchannel = "web"\n[[exposure]]\nchannel = "web"\n', "more than one"),
        ('[[exposure]]\nchannel = "web"\nevents = ["a"]\nexclude = ["b"]\n', "not both"),
        ('[[rule]]\nsignal = "error"\nwhen = [{ property = "x", in = [] }]\n', "at least 1"),
        ("version = 2\n", "version: Input should be 1"),
    ],
)
def test_refused_files(tmp_path: Path, text: str, expected: str) -> None:
    assert any(expected in p for p in problems(tmp_path, text))


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read the file"):
        load_friction_mapping(tmp_path / "missing.toml")


def test_defaults_cover_every_channel_and_the_positive_moments() -> None:
    mapping = load_friction_mapping(DEFAULTS)
    assert isinstance(mapping, FrictionMapping)
    signals = {rule.signal for rule in mapping.rule}
    assert {s for s in Signal if s.positive} <= signals
    for channel in Channel:
        assert any(r.channel in (channel, None) for r in mapping.rule if not r.signal.positive)


# -- repeat contacts ---------------------------------------------------------------------------


def test_repeat_contacts_in_event_time() -> None:
    memory = RepeatContacts(7 * DAY_MS)
    assert not memory.observe("p1", 10 * DAY_MS).repeat
    assert memory.observe("p1", 16 * DAY_MS).repeat  # 6 days later
    assert not memory.observe("p1", 24 * DAY_MS).repeat  # 8 days after the last one
    assert not memory.observe("p2", 16 * DAY_MS + 1).repeat  # another person
    assert not memory.observe("p1", 16 * DAY_MS).repeat  # the same contact again: once


def test_a_late_earlier_contact_makes_the_next_one_a_repeat() -> None:
    memory = RepeatContacts(7 * DAY_MS)
    memory.observe("p1", 20 * DAY_MS, "call_center:queue:billing")
    late = memory.observe("p1", 15 * DAY_MS, "call_center:queue:support")
    assert not late.repeat
    assert late.now_repeat == (20 * DAY_MS, "call_center:queue:billing")
    # A contact between two that already chain changes nobody's answer.
    assert memory.observe("p1", 17 * DAY_MS).now_repeat is None


def test_repeat_memory_is_bounded_by_expire() -> None:
    memory = RepeatContacts(7 * DAY_MS)
    for person in range(100):
        memory.observe(f"p{person}", person * DAY_MS)
    assert memory.expire(50 * DAY_MS) == 50
    assert len(memory) == 50
    assert not memory.observe("p10", 12 * DAY_MS).repeat  # p10's old contact is forgotten
