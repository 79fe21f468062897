"""The deadline wheel against a plain list of its entries: whatever the schedules and sweeps,
each sweep hands back exactly the entries filed in buckets it reaches (an item once per entry
still filed), whether a bucket held one item or many, and moving a deadline later files
nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processors.journeys.core.deadlines import NEVER, DeadlineWheel, Timed

RESOLUTION = 10
ITEMS = 5

ops = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.integers(0, ITEMS - 1), st.integers(0, 200)),
        st.tuples(st.just("pop"), st.integers(0, 60)),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(ops)
def test_each_sweep_returns_the_entries_of_the_buckets_it_reaches(
    script: list[tuple[str, int, int] | tuple[str, int]],
) -> None:
    wheel: DeadlineWheel[Timed] = DeadlineWheel(resolution_ms=RESOLUTION)
    items = [Timed() for _ in range(ITEMS)]
    entries: list[tuple[int, int]] = []  # (item, due) filed and not yet swept
    wake = [NEVER] * ITEMS  # the model's earliest entry per item
    now = 0
    for op in script:
        if len(op) == 3:
            _, n, due = op
            if due < wake[n]:  # an earlier deadline files one more entry; a later one none
                wake[n] = due
                entries.append((n, due))
            wheel.schedule(items[n], due)
        else:
            now += op[1]  # a sweep
            swept = [e for e in entries if e[1] // RESOLUTION <= now // RESOLUTION]
            entries = [e for e in entries if e not in swept]
            for n, _ in swept:
                wake[n] = NEVER
            got = wheel.pop_due(now)
            assert sorted(items.index(i) for i in got) == sorted(n for n, _ in swept)
            assert all(i.wake_ms == NEVER for i in got)
        assert len(wheel) == len(entries)
        assert [i.wake_ms for i in items] == wake
