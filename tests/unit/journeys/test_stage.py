"""stream_processors.journeys.stage without Kafka: a fake transactional sender records what
the stage would send. Time waits for the identity authority and for merged persons in
transit; a merged person's state and later events follow it to its new partition; state
persisted in one transaction restores to the same journeys."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest

from schemas import envelope
from schemas.definitions import load_definitions
from schemas.partitioning import partition_for
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.journeys.stage import JourneyStage
from stream_processors.runtime.state import Applied, ChangelogTable, PartitionState
from tests.unit.journeys.test_core import HOUR, MIN, T0, T0_MS
from tests.unit.senders import RowsAtOnce

PARTITIONS = 2


class FakeSender(RowsAtOnce):
    def __init__(self) -> None:
        self.hooks: list[Callable[[], None]] = []
        self.sent: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        self.changelog: dict[tuple[int, bytes], bytes | None] = {}

    def before_commit(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        assert partition is not None
        if topic.endswith(".changelog"):
            self.changelog[(partition, key or b"")] = value
        else:
            self.sent[(topic, partition)].append(value or b"")

    def commit(self) -> None:
        for hook in self.hooks:
            hook()

    def rows(self, topic: str, partition: int | None = None) -> list[dict[str, Any]]:
        return [
            row
            for (t, p), values in self.sent.items()
            if t == topic and partition in (None, p)
            for value in values
            for row in envelope.decode(value).events
        ]


class Harness:
    def __init__(self, sender: FakeSender | None = None) -> None:
        self.settings = Settings(topics={"partitions": PARTITIONS, "prefix": "u."})
        self.topics = Topics.from_settings(self.settings.topics)
        self.sender = sender or FakeSender()
        tables = [
            self._table(name, source)
            for name, source in (
                ("persons", self.topics.stitched),
                ("merges", self.topics.identity_merges),
                ("handoff", self.topics.journey_handoff),
            )
        ]
        duck: Any = self.sender  # a TransactionalSender's produce and before_commit
        persons, merges, handoff = tables
        self.stage = JourneyStage(
            self.settings,
            self.topics,
            duck,
            persons,
            merges,
            handoff,
            load_definitions(self.settings.journeys.definitions),
        )
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)

    def _table(self, name: str, source: str) -> ChangelogTable:
        duck: Any = self.sender
        table = ChangelogTable(name, f"u.journeys.{name}.changelog", duck, self.settings.kafka)
        for p in range(PARTITIONS):
            table.partitions[p], table.applied[p] = PartitionState(), Applied()
        return table

    def _next(self, topic: str, p: int) -> int:
        self.offsets[(topic, p)] += 1
        return self.offsets[(topic, p)]

    def stitched(
        self, p: int, events: list[dict[str, Any]], watermark_ms: int | None = None, source: int = 0
    ) -> None:
        payload = envelope.encode([orjson.dumps(e) for e in events], watermark_ms, source)
        self.stage.handle_stitched(payload, p, self._next("s", p))

    def time(self, watermark_ms: int, partitions: range = range(PARTITIONS)) -> None:
        """Every source's watermark reaches `partitions`, and the authority has decided all
        links up to it; then the partitions tell each other how far they have read."""
        for p in partitions:
            self.read_to(p, watermark_ms)
        self.stage.announce()
        self.deliver_handoffs()

    def read_to(self, p: int, watermark_ms: int) -> None:
        """Partition `p` hears every source and the authority reach `watermark_ms`."""
        self.merges(p, [], watermark_ms)
        for source in range(PARTITIONS):
            self.stitched(p, [], watermark_ms, source)

    def merges(self, p: int, rows: list[dict[str, Any]], watermark_ms: int | None = None) -> None:
        payload = envelope.encode([orjson.dumps(r) for r in rows], watermark_ms)
        self.stage.handle_merges(payload, p, self._next("m", p))

    def deliver_handoffs(self) -> None:
        """Hand the stage what it sent itself on `journey-handoff`, once."""
        for p in range(PARTITIONS):
            pending = self.sender.sent.pop((self.topics.journey_handoff, p), [])
            for value in pending:
                self.stage.handle_handoff(value, p, self._next("h", p))

    def journeys(self) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for row in self.sender.rows(self.topics.journey_updates):
            if (
                row["journey_id"] not in latest
                or row["version"] > latest[row["journey_id"]]["version"]
            ):
                latest[row["journey_id"]] = row
        return latest


def person_on(partition: int, prefix: str) -> str:
    return next(
        f"{prefix}-{n}"
        for n in range(1000)
        if partition_for(f"{prefix}-{n}".encode(), PARTITIONS) == partition
    )


def event(pid: str, n: int, minutes: float, event_type: str, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": f"{pid}-{n}",
        "channel": "web",
        "event_type": event_type,
        "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "touchpoint": f"/{event_type}",
        "properties": properties,
        "person_id": pid,
    }


def merge(old: str, new: str, minutes: float | None = None) -> dict[str, Any]:
    record = {"kind": "merge", "person_id": new, "old_person_ids": sorted([old, new])}
    if minutes is not None:  # the linking event's time, as the identity authority sends it
        record["event_time"] = (T0 + timedelta(minutes=minutes)).isoformat()
    return record


ANON, CUST = person_on(0, "anon"), person_on(1, "cust")


def test_time_moves_only_to_what_every_source_and_the_authority_have_reached() -> None:
    h = Harness()
    h.stitched(0, [event(ANON, 1, 0, "home_view")], T0_MS + 30 * HOUR, source=0)
    h.stitched(0, [], T0_MS + 30 * HOUR, source=1)
    h.read_to(1, T0_MS + 30 * HOUR)
    h.stage.announce()
    h.deliver_handoffs()
    assert h.stage.part(0).core.watermark_ms < T0_MS, "the authority has not spoken yet"
    h.merges(0, [], T0_MS + 25 * HOUR)
    assert h.stage.part(0).core.watermark_ms < T0_MS, "partition 1 has not heard it read"
    h.stage.announce()
    h.deliver_handoffs()
    assert h.stage.part(0).core.watermark_ms == T0_MS + 25 * HOUR
    (drop,) = h.sender.rows(h.topics.journey_dropoffs, 0)
    assert drop["stage"] == "discover" and drop["retracted"] is False


def test_a_merged_person_moves_to_the_new_partition_and_time_waits_for_it() -> None:
    h = Harness()
    h.stitched(0, [event(ANON, 1, 0, "home_view"), event(ANON, 2, 5, "product_view")])
    h.stitched(1, [event(CUST, 1, 30, "add_to_cart")])
    h.time(T0_MS + HOUR)
    record = merge(ANON, CUST)
    h.merges(1, [record])  # the partition gaining the person hears of it first
    h.time(T0_MS + 30 * HOUR)
    assert h.stage.part(1).core.watermark_ms == T0_MS + HOUR, "waiting for the person"
    h.merges(0, [record])
    h.stitched(0, [event(ANON, 3, 40, "checkout_step")])  # still stamped with the old id
    h.deliver_handoffs()
    h.time(T0_MS + 30 * HOUR)
    assert h.stage.part(1).core.watermark_ms == T0_MS + 30 * HOUR
    assert h.stage.part(0).core.persons() == []
    standing = {j["person_id"]: j for j in h.journeys().values() if j["status"] != "merged"}
    journey = standing[CUST]
    assert [s[0] for s in journey["stages"]] == ["discover", "consider", "cart", "checkout"]
    assert journey["status"] == "dropped_off" and ANON not in standing


def test_a_partition_whose_input_runs_too_far_ahead_of_its_time_stops_reading_it() -> None:
    """Events read ahead of a partition's time wait in memory: in a replay the input ran
    hours ahead, and a million customers' events did not fit. Past `journeys.read_ahead`
    the partition stops reading `stitched` and reads on once half of it is left; asked
    again while too far ahead, as a rebalance resumes every partition."""
    h = Harness()
    calls: list[tuple[int, bool]] = []
    h.stage.hold_back = lambda partition, paused: calls.append((partition, paused))
    ahead = int(h.settings.journeys.read_ahead.total_seconds() * 1000)
    h.stitched(0, [event(ANON, 1, 0, "home_view")], T0_MS + 5 * ahead, source=0)
    assert calls == [], "no time yet: never held back (time may wait on this partition)"
    h.time(T0_MS)
    calls.clear()
    for source in range(PARTITIONS):  # the input runs on; the authority has not decided
        h.stitched(0, [], T0_MS + ahead, source)
    assert calls == [], "as far ahead as allowed"
    h.stitched(0, [event(ANON, 2, 5, "product_view")], T0_MS + ahead + 1, source=0)
    assert calls == [], "the lowest source is what counts"
    for source in range(PARTITIONS):
        h.stitched(0, [], T0_MS + 2 * ahead, source)
    assert calls and set(calls) == {(0, True)} and h.stage.held_back() == 1
    h.time(T0_MS + ahead)  # time moves, but not within half of it yet: still paused
    assert (0, False) not in calls and h.stage.part(0).core.watermark_ms == T0_MS + ahead
    h.time(T0_MS + 2 * ahead - ahead // 2)  # half of it left: read on
    assert calls[-1] == (0, False) and h.stage.held_back() == 0
    assert all(p == 0 for p, _ in calls)


def test_a_partition_whose_time_waits_for_a_merged_person_reads_on() -> None:
    """Paused, a partition stops announcing how far it has read, and every other partition's
    time waits on that: had the person never come, the whole stage would have stood still.
    While its own time waits for a merged person, it reads on."""
    h = Harness()
    calls: list[tuple[int, bool]] = []
    h.stage.hold_back = lambda partition, paused: calls.append((partition, paused))
    ahead = int(h.settings.journeys.read_ahead.total_seconds() * 1000)
    h.time(T0_MS)
    h.merges(1, [merge(ANON, CUST, minutes=40)])  # partition 0 has not sent ANON yet
    for source in range(PARTITIONS):
        h.stitched(1, [], T0_MS + 2 * ahead, source)
    assert calls[-1] == (1, True), "the authority and the other partitions hold it: paused"
    h.time(T0_MS + 2 * ahead)
    assert h.stage.part(1).core.watermark_ms == T0_MS + 40 * MIN - 1
    assert calls[-1] == (1, False) and h.stage.held_back() == 0, "only the person holds it"
    for source in range(PARTITIONS):
        h.stitched(1, [], T0_MS + 4 * ahead, source)
    assert calls[-1] == (1, False) and h.stage.held_back() == 0
    h.merges(0, [merge(ANON, CUST, minutes=40)])
    h.deliver_handoffs()  # it came: time moves, and the input is far ahead again
    h.stitched(1, [], T0_MS + 4 * ahead, 0)
    assert calls[-1] == (1, True)


def _merged_on_the_way(arrives: str) -> Harness:
    """ANON (partition 0) merges into CUST (partition 1) at minute 40. The merged person's
    state reaches partition 1 before its time moves on, or only after every source and
    partition has read a day further."""
    h = Harness()
    h.stitched(0, [event(ANON, 1, 0, "home_view"), event(ANON, 2, 5, "product_view")])
    h.stitched(1, [event(CUST, 1, 30, "add_to_cart")])
    h.time(T0_MS + 10 * MIN)
    record = merge(ANON, CUST, minutes=40)
    h.merges(1, [record])
    if arrives == "late":
        h.time(T0_MS + 30 * HOUR)
        assert h.stage.part(1).core.watermark_ms == T0_MS + 40 * MIN - 1
    h.merges(0, [record])
    h.deliver_handoffs()
    h.time(T0_MS + 30 * HOUR)
    assert h.stage.part(1).core.watermark_ms == T0_MS + 30 * HOUR
    return h


def test_time_moves_to_just_short_of_a_merge_whose_person_is_on_its_way() -> None:
    """At full speed merges come faster than a handoff's round trip: a partition whose time
    stood still while any merged person was on its way hardly moved, and the events ahead of
    its time piled up. Its time moves up to just short of the merge, and what comes out is
    what the person arriving at once gives."""
    late, prompt = _merged_on_the_way("late"), _merged_on_the_way("prompt")
    outcome = {
        j: (r["person_id"], r["status"], [s[0] for s in r["stages"]])
        for j, r in late.journeys().items()
    }
    assert outcome == {
        j: (r["person_id"], r["status"], [s[0] for s in r["stages"]])
        for j, r in prompt.journeys().items()
    }
    standing = {r[0]: r for r in outcome.values() if r[1] != "merged"}
    assert ANON not in standing and standing[CUST][2] == ["discover", "consider", "cart"]
    drops = [
        sorted(
            orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
            for r in h.sender.rows(h.topics.journey_dropoffs)
        )
        for h in (late, prompt)
    ]
    assert drops[0] == drops[1] != []


@pytest.mark.parametrize("time_before", [None, T0_MS - 100 * HOUR], ids=["unknown", "behind"])
def test_a_merge_read_before_the_old_persons_events_forwards_them_once_time_moves(
    time_before: int | None,
) -> None:
    """After a restart, `identity-merges` is read far ahead of the `stitched` backlog: the
    merge comes before the old person's events, while the partition's time is unknown (it
    had not moved before the crash) or further behind than the late tolerance. Those events
    must still follow the person to its new partition once time moved, or they start the old
    person again (its journey dropped off, and the new person's never starts)."""
    h = Harness()
    if time_before is not None:
        h.time(time_before)
    record = merge(ANON, CUST, minutes=20)
    h.merges(1, [record])
    h.merges(0, [record])  # the old person's partition has not read the person yet
    h.deliver_handoffs()
    h.time(T0_MS - HOUR)  # time moves, up to before the events still unread on `stitched`
    h.stitched(0, [event(ANON, 1, 0, "home_view"), event(ANON, 2, 5, "product_view")])
    h.deliver_handoffs()
    h.stitched(1, [event(CUST, 1, 30, "add_to_cart")])
    h.time(T0_MS + 30 * HOUR)
    assert h.stage.part(0).core.persons() == []
    standing = {j["person_id"]: j for j in h.journeys().values() if j["status"] != "merged"}
    assert ANON not in standing
    assert [s[0] for s in standing[CUST]["stages"]] == ["discover", "consider", "cart"]


def test_time_waits_for_every_partition_to_have_read_as_far() -> None:
    """A slower partition may still forward a merged person's events: a faster one that
    moved its time past them would send their transitions hours behind its own watermark
    in a replay or a catch-up (the friction stage's windows would have closed on them)."""
    h = Harness()
    h.stitched(0, [event(ANON, 1, 0, "home_view")])
    h.stitched(1, [event(CUST, 1, 30, "home_view")])
    h.time(T0_MS + HOUR)
    record = merge(ANON, CUST)
    h.merges(1, [record])
    h.merges(0, [record])
    h.deliver_handoffs()
    h.time(T0_MS + 5 * HOUR, partitions=range(1, 2))  # partition 0 has read no further
    assert h.stage.part(1).core.watermark_ms == T0_MS + HOUR, "partition 0 may still forward"
    # Partition 0 reads on: an event still stamped with the old id, then the sources' time.
    h.stitched(0, [event(ANON, 2, 70, "product_view")])
    h.time(T0_MS + 5 * HOUR, partitions=range(1))
    assert h.stage.part(1).core.watermark_ms == T0_MS + 5 * HOUR
    rows = h.sender.rows(h.topics.journey_transitions, 1)
    assert [(t["to_stage"], t["person_id"]) for t in rows if t["to_stage"] == "consider"] == [
        ("consider", CUST)
    ], rows
    # The forwarded event's transition is not behind the watermark sent before it (a merge
    # re-folding the person's earlier journeys may be: those are corrections, counted
    # within the friction windows' allowed lateness).
    watermark = None
    for value in h.sender.sent[(h.topics.journey_transitions, 1)]:
        decoded = envelope.decode(value)
        for row in decoded.events:
            if row["to_stage"] == "consider":
                assert watermark is not None and round(row["at"] * 1000) >= watermark
        if decoded.watermark_ms is not None:
            watermark = decoded.watermark_ms


def test_time_read_is_kept_and_restored() -> None:
    h = Harness()
    h.time(T0_MS + HOUR)
    h.sender.commit()
    again = Harness(FakeSender())
    state = again.stage.persons[1]
    for (p, key), value in h.sender.changelog.items():
        if p == 1 and value is not None and not key.startswith(b"\x00applied"):
            state.data[key.decode()] = orjson.loads(value)[1]
    assert again.stage.part(1).reads.low == T0_MS + HOUR  # not waiting for a new announcement


def test_a_person_that_arrives_before_its_merge_record_does_not_stop_time() -> None:
    h = Harness()
    h.stitched(0, [event(ANON, 1, 0, "home_view")])
    h.time(T0_MS + HOUR)
    record = merge(ANON, CUST)
    h.merges(0, [record])
    h.deliver_handoffs()  # faster than the merge record on partition 1
    h.merges(1, [record])
    h.time(T0_MS + 30 * HOUR)
    assert h.stage.part(1).core.watermark_ms == T0_MS + 30 * HOUR
    assert not h.stage.part(1).handoffs.awaiting and not h.stage.part(1).handoffs.early


def test_persisted_state_restores_the_same_journeys() -> None:
    h = Harness()
    h.stitched(0, [event(ANON, 1, 0, "home_view"), event(ANON, 2, 5, "product_view")])
    h.time(T0_MS + HOUR)
    h.sender.commit()
    # A new worker: its tables hold what the changelog holds.
    again = Harness(FakeSender())
    state = again.stage.persons[0]
    for (p, key), value in h.sender.changelog.items():
        if p == 0 and value is not None and not key.startswith(b"\x00applied"):
            state.data[key.decode()] = orjson.loads(value)[1]
    again.stage.persons.applied[0] = h.stage.persons.applied[0]
    restored = again.stage.part(0)
    assert restored.core.persons() == [ANON]
    assert restored.core.watermark_ms == T0_MS + HOUR and restored.decided_ms == T0_MS + HOUR
    assert restored.core.journeys_of(ANON) == h.stage.part(0).core.journeys_of(ANON)


def test_merge_bookkeeping_is_one_changelog_key_per_person_and_restores() -> None:
    """A value per merged person, not one growing value (the broker limits record size)."""
    h = Harness()
    olds = [person_on(0, f"anon{n}") for n in range(30)]
    for n, old in enumerate(olds):
        h.stitched(0, [event(old, n, 0, "home_view")])
    h.time(T0_MS + HOUR)
    h.merges(0, [merge(old, CUST) for old in olds])
    h.sender.commit()
    forward = {k: v for (p, k), v in h.sender.changelog.items() if p == 0 and b"fwd" in k}
    assert len(forward) == len(olds) and all(
        v is not None and len(v) < 200 for v in forward.values()
    )
    again = Harness(FakeSender())
    state = again.stage.persons[0]
    for (p, key), value in h.sender.changelog.items():
        if p == 0 and value is not None and not key.startswith(b"\x00applied"):
            state.data[key.decode()] = orjson.loads(value)[1]
    assert set(again.stage.part(0).handoffs.forward) == set(olds)
    # Events still stamped with an old id go on to the new person's partition.
    again.stitched(0, [event(olds[0], 99, 50, "product_view")])
    assert [r["person_id"] for r in again.sender.rows(again.topics.journey_handoff, 1)] == [CUST]


def _support_story(h: Harness, *, merge_first: bool, anon: str = ANON) -> dict[str, dict[str, Any]]:
    """A customer's help page on the app (partition 1), then calls from a phone not yet
    linked to them (`anon`, partition 0 unless given), linked 100 hours after the help page:
    far past the late tolerance (72 h) after the calls."""
    call = {"channel": "call_center"}
    calls = [
        {**event(anon, 1, 6 * 60, "contact_queued"), **call},
        {**event(anon, 2, 20 * 60, "contact_ended", disposition="resolved"), **call},
    ]
    help_page = {**event(CUST, 1, 0, "help_view"), "channel": "app"}
    record = merge(anon, CUST, minutes=100 * 60)
    home = partition_for(anon.encode(), PARTITIONS)
    if merge_first:  # `identity-merges` read far ahead of the `stitched` backlog
        h.merges(1, [record])
        h.merges(0, [record])
        h.deliver_handoffs()
    h.stitched(home, calls)
    h.stitched(1, [help_page])
    if not merge_first:  # read in their place: time is just short of the link
        h.time(T0_MS + 99 * HOUR)
        h.merges(1, [record])
        h.merges(0, [record])
        h.deliver_handoffs()
    h.time(T0_MS + 120 * HOUR)
    h.deliver_handoffs()
    h.time(T0_MS + 120 * HOUR)
    return {j["journey_id"]: j for j in h.journeys().values()}


@pytest.mark.parametrize("anon", [ANON, person_on(1, "anon")], ids=["across", "same-partition"])
def test_a_merge_read_ahead_of_the_events_before_it_gives_what_reading_it_in_place_gives(
    anon: str,
) -> None:
    """Under load the journeys stage reads `identity-merges` (small) well ahead of its
    `stitched` backlog. Applied when read, a merge took in the old person's calls that
    arrived after it, however old: the customer's issue converted, where the same input
    read in order (the calls sealed away, older than the tolerance at the link) left it
    dropped off. Applied when time reaches the link, it gives the same either way."""
    in_order = _support_story(Harness(), merge_first=False, anon=anon)
    ahead = _support_story(Harness(), merge_first=True, anon=anon)
    outcome = {
        j: (r["person_id"], r["status"], [s[0] for s in r["stages"]]) for j, r in ahead.items()
    }
    assert outcome == {
        j: (r["person_id"], r["status"], [s[0] for s in r["stages"]]) for j, r in in_order.items()
    }
    assert sorted(outcome.values()) == [(CUST, "dropped_off", ["issue"])]


def test_a_person_handed_over_ahead_of_its_merge_stays_apart_until_time_reaches_it() -> None:
    """The old person's partition sends the state when it reads the merge; the new person's
    keeps it a person of its own, in its changelog too, until its time reaches the link."""
    h = Harness()
    h.stitched(0, [{**event(ANON, 1, 0, "help_view"), "channel": "app"}])
    h.merges(1, [merge(ANON, CUST, minutes=60)])
    h.merges(0, [merge(ANON, CUST, minutes=60)])
    h.deliver_handoffs()
    assert h.stage.part(1).handoffs.held == {ANON: (CUST, T0_MS + HOUR)}
    assert h.stage.part(0).core.persons() == []
    # An event still stamped with the old id, forwarded: it joins the old person, apart.
    h.stitched(0, [{**event(ANON, 2, 30, "contact_queued"), "channel": "call_center"}])
    h.deliver_handoffs()
    assert h.stage.part(1).core.persons() == [ANON]
    h.sender.commit()
    again = Harness(FakeSender())
    for p in range(PARTITIONS):
        state = again.stage.persons[p]
        for (q, key), value in h.sender.changelog.items():
            if q == p and value is not None and not key.startswith(b"\x00applied"):
                state.data[key.decode()] = orjson.loads(value)[1]
        again.stage.persons.applied[p] = h.stage.persons.applied[p]
    assert again.stage.part(1).handoffs.held == {ANON: (CUST, T0_MS + HOUR)}
    assert again.stage.part(1).core.persons() == [ANON]
    again.time(T0_MS + 2 * HOUR)
    again.deliver_handoffs()  # every partition's read, announced
    again.time(T0_MS + 2 * HOUR)
    assert again.stage.part(1).handoffs.held == {}
    assert again.stage.part(1).core.persons() == [CUST]


@pytest.mark.parametrize("old", [ANON, person_on(1, "anon")], ids=["across", "same-partition"])
def test_a_held_merge_aliases_the_old_id_only_on_the_partition_that_reads_its_events(
    old: str,
) -> None:
    """When time reaches a held merge, the new person's partition keeps an alias of the old
    id only if the old id's events are read there; from another partition they come
    forwarded, stamped with the new id. Either way the old id's later events join the new
    person's journey."""
    h = Harness()
    home = partition_for(old.encode(), PARTITIONS)
    h.stitched(1, [{**event(CUST, 1, 0, "help_view"), "channel": "app"}])
    h.stitched(home, [{**event(old, 1, 10, "contact_queued"), "channel": "call_center"}])
    h.merges(1, [merge(old, CUST, minutes=60)])
    h.merges(0, [merge(old, CUST, minutes=60)])
    h.deliver_handoffs()
    assert h.stage.part(1).handoffs.held == {old: (CUST, T0_MS + HOUR)}
    h.time(T0_MS + 2 * HOUR)
    h.deliver_handoffs()
    h.time(T0_MS + 2 * HOUR)
    assert h.stage.part(1).handoffs.held == {}
    held = h.stage.part(1).core.held_persons()
    assert (old in held) == (home == 1)
    assert CUST in held
    h.sender.commit()
    if home != 1:  # the old person held apart had a key of its own: now a tombstone
        assert h.sender.changelog[(1, old.encode())] is None
    # An event still stamped with the old id, read on its own partition.
    ended = event(old, 2, 150, "contact_ended", disposition="resolved")
    h.stitched(home, [{**ended, "channel": "call_center"}])
    h.deliver_handoffs()
    h.time(T0_MS + 3 * HOUR)
    assert [
        (j["person_id"], j["status"], [s[0] for s in j["stages"]]) for j in h.journeys().values()
    ] == [(CUST, "converted", ["issue", "contact", "resolved"])]


def test_events_of_a_person_merged_into_one_that_left_follow_it() -> None:
    """Y merges into A here, then A into B on the other partition: an event still stamped Y
    goes to B (it made a stray copy of A here, and B's journey missed it)."""
    y, a, b = person_on(0, "y"), person_on(0, "a"), person_on(1, "b")
    h = Harness()
    h.stitched(0, [{**event(y, 1, 0, "help_view"), "channel": "app"}])
    h.stitched(0, [event(a, 1, 1, "home_view")])
    h.time(T0_MS + 10 * MIN)
    h.merges(0, [merge(y, a, minutes=5)])  # both here, behind time: the core moves it now
    h.time(T0_MS + 20 * MIN)
    h.merges(0, [merge(a, b, minutes=15)])
    h.merges(1, [merge(a, b, minutes=15)])
    h.deliver_handoffs()
    h.time(T0_MS + 30 * MIN)
    h.deliver_handoffs()
    h.time(T0_MS + 30 * MIN)
    h.stitched(0, [{**event(y, 2, 25, "contact_queued"), "channel": "call_center"}])
    h.deliver_handoffs()
    h.time(T0_MS + 40 * MIN)
    assert h.stage.part(0).core.persons() == []
    stages = {j["definition_id"]: [s[0] for s in j["stages"]] for j in h.journeys().values()}
    assert {j["person_id"] for j in h.journeys().values()} == {b}
    assert stages["support"] == ["issue", "contact"]


@pytest.mark.parametrize("linked", [5, 15], ids=["behind-time", "ahead-of-time"])
def test_a_person_handed_over_to_one_merged_here_meanwhile_joins_where_it_went(
    linked: int,
) -> None:
    """X's state is on its way to P when P merges into Q here: it joins Q (it made a stray
    copy of P, with X's journeys, that nothing would ever join again)."""
    x, p, q = person_on(0, "x"), person_on(1, "p"), person_on(1, "q")
    h = Harness()
    h.stitched(0, [{**event(x, 1, 0, "help_view"), "channel": "app"}])
    h.stitched(1, [event(p, 1, 1, "home_view"), event(q, 1, 2, "home_view")])
    h.time(T0_MS + 10 * MIN)
    h.merges(1, [merge(x, p, minutes=linked)])  # P's partition awaits X's state
    h.merges(1, [merge(p, q, minutes=6)])  # both here, behind time: the core moves it now
    h.merges(0, [merge(x, p, minutes=linked)])  # X's partition sends it, for P
    h.deliver_handoffs()
    h.time(T0_MS + 20 * MIN)
    h.deliver_handoffs()
    h.time(T0_MS + 20 * MIN)
    assert h.stage.part(1).core.persons() == [q]
    journeys = h.journeys().values()
    assert {j["person_id"] for j in journeys} == {q}
    assert sorted(j["definition_id"] for j in journeys if j["status"] == "open") == [
        "purchase",
        "support",
    ]
