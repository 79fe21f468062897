"""What dropped journeys saw, from the drop-off rows to the alert's cause: the friction
stage counts each drop-off's signal labels in its stage windows (`saw:<label>`), takes them
back exactly with a retraction, keeps the window bounded, and an alert about the stage says
what share of the journeys that dropped there saw what."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import orjson

from schemas import envelope
from schemas.topics import Topics
from stream_processors.friction.alerts.core.context import AlertContext
from stream_processors.friction.core.rules import Series
from stream_processors.friction.core.series import MAX_STAGE_COUNTERS, SAW, count_seen
from stream_processors.friction.core.window_state import RecordedWindows
from stream_processors.friction.core.windows import Advance, WindowCounts
from stream_processors.friction.partitions import FrictionPartitions
from tests.unit.friction.alerts.builders import SIZE, T0, at, closed
from tests.unit.friction.test_stage import T0 as STAGE_T0
from tests.unit.friction.test_stage import (
    RecordingSender,
    counts_of,
    drop_row,
    journeys_time,
    partials,
    settings,
    stage,
    stitched,
)
from tests.unit.friction.test_stage import S as STAGE_WINDOW
from tests.unit.friction.test_stage_groups import record_of

DECLINED = "payment_declined@web:/checkout"
RAGE = "rage_click@web:/cart"
CHECKOUT_DROPS = Series("dropoff", "purchase:checkout:web", "dropoff")
CHECKOUT_ENTRIES = Series("entries", "purchase:checkout:web", "entered")


# -- windows: bounded, and exact on retraction -------------------------------------------------


def windows() -> RecordedWindows:
    return RecordedWindows(timedelta(minutes=5), timedelta(hours=1))


def held(w: RecordedWindows, scope: str) -> dict[str, int]:
    (window,) = [c for c in w.advance(10 * 60_000).windows if c.key[1] == scope]
    return dict(window.counts)


def test_labels_are_counted_at_the_stage_for_its_channel_and_all_channels() -> None:
    w = windows()
    count_seen(w, "purchase", "checkout", "web", [DECLINED, RAGE], at_ms=1_000)
    count_seen(w, "purchase", "checkout", "app", [DECLINED], at_ms=2_000)
    assert held(w, "purchase:checkout:*") == {SAW + DECLINED: 2, SAW + RAGE: 1}


def test_a_full_window_takes_no_new_labels_and_retractions_stay_exact() -> None:
    w = windows()
    key = ("stage", "purchase:checkout:web")
    w.add(key, 1_000, ("dropped",))
    labels = [f"{SAW}s{n}@web" for n in range(MAX_STAGE_COUNTERS + 5)]
    for name in labels:
        w.add_capped(key, 1_000, (name,), cap=MAX_STAGE_COUNTERS)
    w.add_capped(key, 1_000, (labels[0],), cap=MAX_STAGE_COUNTERS)  # held: still counted
    counts = held(w, key[1])
    assert len(counts) == MAX_STAGE_COUNTERS
    assert counts[labels[0]] == 2 and labels[-1] not in counts
    # Taking every label back leaves every counter at zero: what was left out stays out.
    w2 = windows()
    w2.add(key, 1_000, ("dropped",))
    for name in labels:
        w2.add_capped(key, 1_000, (name,), cap=MAX_STAGE_COUNTERS)
    for name in reversed(labels):
        w2.add_capped(key, 1_000, (name,), cap=MAX_STAGE_COUNTERS, amount=-1)
    left = held(w2, key[1])
    assert len(left) == MAX_STAGE_COUNTERS
    assert {n: c for n, c in left.items() if n != "dropped"} == dict.fromkeys(list(left)[1:], 0)


# -- the friction stage's partitions -----------------------------------------------------------


def seen_row(dropoff_id: str, at_ms: int, signals: list[str], version: int = 1) -> bytes:
    row = orjson.loads(drop_row(dropoff_id, at_ms, version=version))
    return orjson.dumps({**row, "signals": signals})


def started() -> tuple[FrictionPartitions, RecordingSender, Topics]:
    sender, s = RecordingSender(), settings()
    parts = stage(sender, s)
    for source in (0, 1):
        parts.handle_stitched(stitched([], STAGE_T0 + 5 * STAGE_WINDOW, source), 0, source)
    return parts, sender, Topics.from_settings(s.topics)


def test_drop_offs_count_their_labels_and_retractions_take_them_back() -> None:
    parts, sender, topics = started()
    rows = [
        seen_row("d1", STAGE_T0 + 10, [DECLINED, RAGE]),
        seen_row("d2", STAGE_T0 + 20, [DECLINED]),
        seen_row("d3", STAGE_T0 + 30, []),
    ]
    parts.handle_dropoffs(envelope.encode(rows, None), 0, 0)
    retract = orjson.loads(drop_row("d2", 0, retracted=True, version=2))
    parts.handle_dropoffs(envelope.encode([orjson.dumps(retract)], None), 0, 1)
    journeys_time(parts, 0, STAGE_T0 + STAGE_WINDOW, 2)
    first = partials(sender, topics)
    want = {"dropped": 2, SAW + DECLINED: 1, SAW + RAGE: 1}
    assert counts_of(first, "purchase:checkout:web") == [(STAGE_T0, want)]
    # A late retraction re-emits the window without d1's labels, and says what it replaces.
    late = orjson.loads(drop_row("d1", 0, retracted=True, version=2))
    parts.handle_dropoffs(envelope.encode([orjson.dumps(late)], STAGE_T0 + STAGE_WINDOW + 1), 0, 3)
    (reemitted,) = [
        r
        for r in partials(sender, topics)[len(first) :]
        if r.get("w", [None, None])[1] == "purchase:checkout:*"
    ]
    assert reemitted["c"] == {"dropped": 1, SAW + DECLINED: 0, SAW + RAGE: 0}
    assert reemitted["p"] == want


def test_a_drop_off_sent_again_with_other_labels_counts_only_the_new_ones() -> None:
    parts, sender, topics = started()
    parts.handle_dropoffs(envelope.encode([seen_row("d1", STAGE_T0 + 10, [RAGE])], None), 0, 0)
    again = seen_row("d1", STAGE_T0 + 10, [RAGE, DECLINED, DECLINED], version=3)
    parts.handle_dropoffs(envelope.encode([again], None), 0, 1)
    journeys_time(parts, 0, STAGE_T0 + STAGE_WINDOW, 2)
    counts = counts_of(partials(sender, topics), "purchase:checkout:web")
    assert counts == [(STAGE_T0, {"dropped": 1, SAW + RAGE: 1, SAW + DECLINED: 1})]


def test_a_drop_off_remembered_before_labels_is_still_taken_back() -> None:
    parts, sender, topics = started()
    parts.handle_dropoffs(envelope.encode([drop_row("d1", STAGE_T0 + 10)], None), 0, 0)
    part = parts.part(0)
    part.counted["dd1"] = part.counted["dd1"][:4]  # as a changelog written before labels
    retract = drop_row("d1", 0, retracted=True, version=2)
    parts.handle_dropoffs(envelope.encode([retract], None), 0, 1)
    journeys_time(parts, 0, STAGE_T0 + STAGE_WINDOW, 2)
    assert counts_of(partials(sender, topics), "purchase:checkout:web") == [
        (STAGE_T0, {"dropped": 0})
    ]


# -- the cause an alert carries ----------------------------------------------------------------


def stage_window(index: int, scope: str, counts: dict[str, int]) -> WindowCounts:
    start = T0 + index * SIZE
    return WindowCounts(("stage", scope), start, start + SIZE, 1, counts, None, False)


def context_with(windows: list[WindowCounts], first: int, last: int) -> AlertContext:
    context = AlertContext()
    context.observe(Advance(tuple(windows), closed(first, last), T0 + (last + 1) * SIZE))
    return context


def checkout_drops(declined: int, total: int) -> dict[str, int]:
    return {"dropped": total, "progressed": 3, SAW + DECLINED: declined, SAW + RAGE: 1}


def test_a_drop_off_alert_says_what_share_of_the_dropped_journeys_saw_what() -> None:
    windows = [stage_window(i, "purchase:checkout:web", checkout_drops(0, 2)) for i in range(12)]
    windows += [
        stage_window(12, "purchase:checkout:web", checkout_drops(20, 25)),
        stage_window(13, "purchase:checkout:web", checkout_drops(21, 25)),
        stage_window(13, "purchase:checkout:app", checkout_drops(0, 40)),
    ]
    context = context_with(windows, 0, 13)
    record = replace(record_of(CHECKOUT_DROPS), last_window_end=at(14), started_at=at(12))
    cause = context.cause(record)
    assert (
        cause
        == "82% of journeys that dropped at web checkout saw payment_declined at web:/checkout"
    )


def test_an_entries_collapse_names_what_the_journeys_that_dropped_before_saw() -> None:
    windows = [
        stage_window(13, "purchase:cart:web", checkout_drops(9, 10)),
        stage_window(13, "purchase:cart:*", checkout_drops(9, 30)),
    ]
    context = context_with(windows, 0, 13)
    record = replace(
        record_of(CHECKOUT_ENTRIES),
        kind="entries_collapse",
        observed=0,
        expected=40.0,
        last_window_end=at(14),
        started_at=at(13),
    )
    cause = context.cause(record)
    assert cause == (
        "journeys stopped reaching web checkout: 0 vs 40.0 expected per window; "
        "90% of purchase journeys that dropped on web saw payment_declined at web:/checkout"
    )


def test_the_drop_offs_kept_for_causes_survive_a_restart() -> None:
    context = context_with(
        [stage_window(13, "purchase:checkout:web", checkout_drops(8, 10))], 0, 13
    )
    touched, _ = context.take_changes()
    saved = {s: orjson.loads(orjson.dumps(context.snapshot_start(s))) for s in touched}
    restored = AlertContext()
    restored.restore(saved, {})
    record = replace(record_of(CHECKOUT_DROPS), last_window_end=at(14), started_at=at(13))
    assert restored.cause(record) == context.cause(record)
    assert restored.cause(record).startswith("80% of journeys that dropped at web checkout")
    # What was written before drop-offs were kept has no "d": it restores without them.
    old = {s: {"f": v["f"], "e": v["e"]} for s, v in saved.items()}
    restored.restore(old, {})
    assert restored.cause(record) == "no friction signal at or before web checkout rose with it"
