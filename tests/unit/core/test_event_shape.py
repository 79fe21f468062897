"""stream_processors.core.event_shape: the checks the identity, journeys and friction stages
apply to what they read from other stages. The batch fast path must agree with the field by
field check on every event, or a poison event could reach a stage's state."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processors.core.event_shape import (
    dropoff_problems,
    link_problems,
    merge_problems,
    split,
    stitched_problems,
    touchpoint_problems,
    transition_problems,
)

GOOD: dict[str, Any] = {
    "event_id": "6f1b1c4e-7d0a-4c1e-9a55-3b7d8e2f9a10",
    "event_type": "checkout_step",
    "channel": "web",
    "occurred_at": "2026-12-01T10:00:00.123000+00:00",
    "touchpoint": "/checkout",
    "identity": {"customer_id": "c-1", "email_hash": "h"},
    "person_id": "p-1",
    "properties": {"step": 2},
}


def fields(problems: list[Any]) -> set[str]:
    return {p.field for p in problems}


def test_a_well_formed_batch_passes_as_it_is() -> None:
    events = [copy.deepcopy(GOOD) for _ in range(3)]
    good, bad = split(events, stitched_problems)
    assert good is events and bad == []


def test_each_defect_is_named_by_its_field_and_never_repeats_the_value() -> None:
    broken = {
        **GOOD,
        "event_id": 7,
        "channel": "fax",
        "occurred_at": "tomorrow noon jane@example.com",
        "identity": {"customer_id": 12345},
        "person_id": ["p"],
    }
    problems = stitched_problems(broken)
    assert fields(problems) == {
        "event_id",
        "channel",
        "occurred_at",
        "identity.customer_id",
        "person_id",
    }
    text = " ".join(p.message for p in problems)
    assert "jane@example.com" not in text and "fax" not in text and "12345" not in text


def test_poison_events_are_split_out_in_order() -> None:
    events: list[Any] = [dict(GOOD, event_id="a"), "not an event", dict(GOOD, event_id="b"), {}]
    good, bad = split(events, stitched_problems)
    assert [e["event_id"] for e in good] == ["a", "b"]  # downstream, ids are any text
    assert [e for e, _ in bad] == ["not an event", {}]
    assert fields(bad[1][1]) >= {"event_id", "event_type", "channel", "occurred_at"}


def test_the_identity_stage_forwards_only_uuid_event_ids() -> None:
    """The touchpoints table's key is a UUID: a touchpoint whose id is not one would be
    refused by ClickHouse at the far end, so the identity stage keeps it back."""
    odd = {**GOOD, "event_id": "not-a-uuid"}
    assert fields(touchpoint_problems(odd)) == {"event_id"}
    good, bad = split([GOOD, odd], touchpoint_problems)
    assert good == [GOOD] and [e for e, _ in bad] == [odd]
    assert stitched_problems(odd) == []


def test_anonymous_events_have_no_person_and_pass() -> None:
    anonymous = {k: v for k, v in GOOD.items() if k not in ("person_id", "identity")}
    assert stitched_problems(anonymous) == []
    assert touchpoint_problems(anonymous) == []


def test_links_need_what_the_authority_decides_with() -> None:
    link = {k: GOOD[k] for k in ("event_id", "occurred_at", "channel", "identity", "person_id")}
    assert link_problems(link) == []
    assert fields(link_problems({**link, "identity": None})) == {"identity"}
    assert fields(link_problems({**link, "occurred_at": 5})) == {"occurred_at"}


def test_merges_need_their_persons_and_other_kinds_pass() -> None:
    merge = {"kind": "merge", "person_id": "p1", "old_person_ids": ["p2"], "event_time": None}
    assert merge_problems(merge) == []
    assert merge_problems({"kind": "move", "anything": 1}) == []
    assert fields(merge_problems({**merge, "old_person_ids": "p2"})) == {"old_person_ids"}
    assert fields(merge_problems({**merge, "person_id": None})) == {"person_id"}
    assert fields(merge_problems(["merge"])) == {"<record>"}


def test_journey_rows_need_what_the_friction_stage_counts() -> None:
    transition = {
        "transition_id": "t1",
        "definition_id": "purchase",
        "to_stage": "checkout",
        "channel": "web",
        "person_id": "p1",
        "at": 1_700_000_000.5,
    }
    assert transition_problems(transition) == []
    assert fields(transition_problems({**transition, "at": "soon"})) == {"at"}
    assert fields(transition_problems({**transition, "at": True})) == {"at"}
    assert fields(
        transition_problems({k: v for k, v in transition.items() if k != "transition_id"})
    ) == {"transition_id"}
    # A cancelling row names only what it cancels.
    assert transition_problems({"transition_id": "t1", "retracted": True}) == []
    dropoff = {
        "dropoff_id": "d1",
        "definition_id": "purchase",
        "stage": "checkout",
        "last_channel": "web",
        "person_id": "p1",
        "dropped_at": 1_700_000_000,
    }
    assert dropoff_problems(dropoff) == []
    assert fields(dropoff_problems({**dropoff, "stage": 3})) == {"stage"}


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=8),
    st.sampled_from(
        ["web", "app", "store", "call_center", "2026-12-01T10:00:00+00:00", "", "not-a-uuid"]
    ),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.sampled_from(["customer_id", "email_hash", "x"]), st.integers() | st.text()),
)
_KEYS = st.sampled_from(
    ["event_id", "event_type", "channel", "occurred_at", "identity", "person_id", "touchpoint"]
)


_REMOVE = object()


@settings(max_examples=400)
@given(
    st.lists(
        st.lists(st.tuples(_KEYS, _VALUES | st.just(_REMOVE)), max_size=2), min_size=1, max_size=4
    )
)
def test_the_fast_path_never_passes_an_event_the_full_check_refuses(
    plan: list[list[tuple[str, Any]]],
) -> None:
    """Each event is a well-formed one with zero to two fields replaced or removed."""
    events: list[Any] = []
    for changes in plan:
        event = copy.deepcopy(GOOD)
        for key, value in changes:
            if value is _REMOVE:
                event.pop(key, None)
            else:
                event[key] = value
        events.append(event)
    for problems_of in (stitched_problems, touchpoint_problems):
        good, bad = split(events, problems_of)
        assert [e for e in events if not problems_of(e)] == good
        assert [e for e in events if problems_of(e)] == [e for e, _ in bad]
