"""Invariants of the journeys stage's bookkeeping of persons between partitions (`Handoffs`):
whatever the order of merges, expiries and erasures, every person forwards exactly where a
plain model says, and the index of who forwards to whom (`_by_target`) agrees with the
forwards; whatever the order of merge records and the states they send, and restarts
between them, a person is awaited exactly as many times as its records outnumber its states,
and time waits short of the earliest merge still awaited."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processors.journeys.handoffs import Handoffs
from tests.unit.journeys.tables import written

PERSONS = ("a", "b", "c", "d", "e", "f")

Op = tuple[Any, ...]
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("merge"),
            st.sampled_from(PERSONS),
            st.sampled_from(PERSONS),
            st.integers(0, 50),
        ),
        st.tuples(st.just("expire"), st.integers(0, 50)),
        st.tuples(st.just("forget"), st.frozensets(st.sampled_from(PERSONS), max_size=2)),
        st.tuples(st.just("restore")),
    ),
    max_size=40,
)


def _model_merge(model: dict[str, tuple[str, int]], old: str, new: str, until: int) -> None:
    model[old] = (new, until)
    for other, (target, expiry) in list(model.items()):
        if target == old:
            model[other] = (new, expiry)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_forwards_follow_every_merge_expiry_and_erasure(steps: list[Op]) -> None:
    handoffs = Handoffs()
    model: dict[str, tuple[str, int]] = {}
    table: dict[str, Any] = {}
    for step in steps:
        if step[0] == "merge":
            _, old, new, until = step
            if old == new or handoffs.target(new) is not None:
                continue  # the stage merges only into a person that stays on
            handoffs.forward_to(old, new, until)
            _model_merge(model, old, new, until)
        elif step[0] == "expire":
            handoffs.expire(step[1])
            model = {k: v for k, v in model.items() if v[1] > step[1]}
        elif step[0] == "forget":
            handoffs.forget(set(step[1]))
            model = {k: v for k, v in model.items() if k not in step[1] and v[0] not in step[1]}
        else:  # a restart: from what was written
            handoffs = Handoffs.restore(dict(written(handoffs, table)))
        assert handoffs.forward == model
        index: dict[str, set[str]] = {}
        for target, found in handoffs._by_target.items():
            index[target] = {found} if isinstance(found, str) else set(found)
            assert index[target], "no empty entry is kept"
        expected: dict[str, set[str]] = {}
        for old, (new, _) in model.items():
            expected.setdefault(new, set()).add(old)
        assert {k: v for k, v in index.items() if v} == expected


counting = st.lists(
    st.tuples(
        st.sampled_from(("expect", "arrived", "restore")),
        st.sampled_from(PERSONS[:3]),
        st.one_of(st.none(), st.integers(0, 50)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(counting)
def test_records_and_states_in_any_order_are_awaited_exactly_until_both_are_in(
    steps: list[tuple[str, str, int | None]],
) -> None:
    handoffs = Handoffs()
    table: dict[str, Any] = {}
    balance: dict[str, int] = {}  # records less states, per person
    since: dict[str, int | None] = {}  # the earliest merge while awaited (None: unknown)
    for kind, person, at in steps:
        n = balance.get(person, 0)
        if kind == "expect":
            handoffs.expect(person, at)
            if n == 0:
                since[person] = at
            elif n > 0:
                known = since[person]
                since[person] = None if known is None or at is None else min(known, at)
            balance[person] = n + 1
        elif kind == "arrived":
            handoffs.arrived(person)
            balance[person] = n - 1
        else:
            handoffs = Handoffs.restore(dict(written(handoffs, table)))
        awaited = {p: b for p, b in balance.items() if b > 0}
        assert handoffs.early == {p: -b for p, b in balance.items() if b < 0}
        assert {p: 1 + handoffs.awaited_again.get(p, 0) for p in handoffs.awaiting} == awaited
        assert handoffs.awaiting == {p: since[p] for p in awaited}
        times = [t for t in (since[p] for p in awaited) if t is not None]
        expected = min(times) - 1 if times and len(times) == len(awaited) else None
        assert handoffs.awaited_before() == expected
