"""Cause attribution: the signals that rose against their own reference, ranked by excess,
what dropped journeys saw, and the sentence an incident carries."""

from __future__ import annotations

import pytest

from stream_processors.friction.alerts.core.causes import (
    CauseConfig,
    likely_cause,
    place,
    rises,
    seen_by_dropped,
)
from stream_processors.friction.core.rules import Series

# Twelve reference windows of 100 exposures at each touchpoint.
BEFORE = {
    "web:/checkout": {"exposures": 1200, "payment_declined": 36, "error": 24, "friction": 60},
    "web:/cart": {"exposures": 1200, "rage_click": 12, "friction": 12},
}
NOW = {
    "web:/checkout": {
        "exposures": 100,
        "payment_declined": 41,  # 3 expected
        "error": 3,  # 2 expected: no rise
        "friction": 44,
        "order_completed": 90,  # a positive moment: never a cause
    },
    "web:/cart": {"exposures": 100, "rage_click": 9, "friction": 9},  # 1 expected
}


def test_the_signals_that_rose_are_ranked_by_excess() -> None:
    found = rises(NOW, BEFORE)
    assert [(r.scope, r.signal) for r in found] == [
        ("web:/checkout", "payment_declined"),
        ("web:/cart", "rage_click"),
    ]
    top = found[0]
    assert top.expected == pytest.approx(3.0)
    assert top.excess == pytest.approx(38.0) and top.ratio == pytest.approx(41 / 3)
    assert top.p_value < 1e-10


def test_the_sentence_names_what_dropped_journeys_saw() -> None:
    cause = likely_cause(
        "web checkout",
        NOW,
        BEFORE,
        dropped={"Payment Failed / card_declined": 41, "Rage Click": 5},
        dropped_total=50,
    )
    assert cause.sentence.startswith(
        "82% of journeys that dropped at web checkout saw Payment Failed / card_declined; "
        "rose with it: payment_declined at web:/checkout 41 vs 3.0 expected"
    )
    assert [s.label for s in cause.seen] == ["Payment Failed / card_declined"]  # 10% is noise


def test_without_dropped_journeys_the_rises_are_the_cause() -> None:
    cause = likely_cause("web /checkout", NOW, BEFORE)
    assert cause.sentence == (
        "rose with it: payment_declined at web:/checkout 41 vs 3.0 expected, "
        "rage_click at web:/cart 9 vs 1.0 expected"
    )


def test_nothing_rose_says_so() -> None:
    cause = likely_cause("web checkout", BEFORE, BEFORE)
    assert cause.rises == () and cause.seen == ()
    assert cause.sentence == "no friction signal at or before web checkout rose with it"


@pytest.mark.parametrize(
    ("observed", "named"),
    [(2, False), (3, True)],  # min_count: a new signal needs three hits to be named
)
def test_a_signal_never_seen_before_counts_as_half_a_hit(observed: int, named: bool) -> None:
    now = {"app:payment": {"exposures": 100, "app_crash": observed}}
    before = {"app:payment": {"exposures": 1200}}
    found = rises(now, before)
    assert bool(found) is named
    if found:
        assert found[0].expected == pytest.approx(0.5 / 12)


def test_a_scope_without_exposures_compares_counts_per_window() -> None:
    now = {"app:*": {"app_crash": 12}}
    before = {"app:*": {"app_crash": 24}}  # over 12 windows: 2 per window
    (rise,) = rises(now, before, now_windows=1, before_windows=12)
    assert rise.expected == pytest.approx(2.0)
    assert rises(now, before, now_windows=1, before_windows=2) == []  # 12 expected


def test_the_thresholds_are_configurable() -> None:
    strict = CauseConfig(min_ratio=20.0)
    assert rises(NOW, BEFORE, strict) == []


def test_shares_of_dropped_journeys() -> None:
    seen = seen_by_dropped({"a": 10, "b": 30, "c": 0}, 40)
    assert [(s.label, s.share) for s in seen] == [("b", 0.75), ("a", 0.25)]
    assert seen_by_dropped({"a": 3}, 0) == []


@pytest.mark.parametrize(
    ("series", "said"),
    [
        (Series("dropoff", "purchase:checkout:web", "dropoff"), "web checkout"),
        (Series("entries", "purchase:checkout:*", "entered"), "checkout (all channels)"),
        (Series("friction", "web:/checkout", "error"), "web /checkout"),
        (Series("friction", "app:*", "app_crash"), "app (all touchpoints)"),
        (Series("volume", "web:web-shop", "events"), "web web-shop"),
    ],
)
def test_places_read_as_people_say_them(series: Series, said: str) -> None:
    assert place(series) == said
