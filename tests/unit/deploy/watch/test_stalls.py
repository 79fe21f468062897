"""deploy.watch.stalls and the watcher's health: stalled means behind and not moving."""

from __future__ import annotations

from collections.abc import Sequence

from deploy.watch.service import Watcher
from deploy.watch.stalls import Position, StallWatch


def at(committed: int, end: int, partition: int = 0, group: str = "g") -> Position:
    return Position(group, "t", partition, committed, end)


def test_behind_and_still_for_the_bound_is_stalled() -> None:
    watch = StallWatch(stall_after=60)
    assert not watch.observe([at(10, 50)], now=0)[0].stalled
    assert not watch.observe([at(10, 80)], now=59)[0].stalled
    (status,) = watch.observe([at(10, 90)], now=60)
    assert status.stalled and status.lag == 80 and status.stalled_for == 60
    assert status.stalled_partitions == ("t[0]",)


def test_moving_offsets_are_never_stalled_however_far_behind() -> None:
    watch = StallWatch(stall_after=60)
    for step in range(10):
        (status,) = watch.observe([at(step * 10, 10_000)], now=step * 59)
        assert not status.stalled


def test_idle_and_caught_up_is_never_stalled_and_restarts_the_clock() -> None:
    watch = StallWatch(stall_after=60)
    watch.observe([at(50, 50)], now=0)
    assert not watch.observe([at(50, 50)], now=500)[0].stalled
    # New input arrives: the clock starts when it was last caught up.
    assert not watch.observe([at(50, 70)], now=530)[0].stalled
    assert watch.observe([at(50, 70)], now=560)[0].stalled


def test_a_group_is_stalled_while_any_partition_is_and_lag_adds_up() -> None:
    watch = StallWatch(stall_after=10)
    watch.observe([at(0, 5, 0), at(0, 5, 1)], now=0)
    (status,) = watch.observe([at(5, 5, 0), at(0, 7, 1)], now=20)
    assert status.stalled and status.lag == 7 and status.stalled_partitions == ("t[1]",)


def test_nothing_committed_yet_counts_the_whole_input_as_lag() -> None:
    assert at(-1001, 40).lag == 40


def test_health_is_503_naming_stalled_groups_and_survives_unreadable_kafka() -> None:
    now = [0.0]
    answers: list[Sequence[Position] | Exception] = [
        [at(0, 9, group="a"), at(3, 3, group="b")],
        [at(0, 9, group="a"), at(3, 3, group="b")],
        ConnectionError("Kafka is down"),
    ]

    def read() -> Sequence[Position]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    watcher = Watcher(read, stall_after=5, poll_seconds=1, clock=lambda: now[0])
    watcher.poll_once()
    assert watcher.health()[0] == 200
    now[0] = 6
    watcher.poll_once()
    status, body = watcher.health()
    assert (status, body["stalled"]) == (503, ["a"])
    watcher.poll_once()  # unreadable: the last statuses stand, and the error is shown
    status, body = watcher.health()
    assert status == 503 and body["error"] == "Kafka is down"
