"""Invariants of the journey core (hypothesis): arrival order within the allowed lateness
changes no outcome; every journey instance ends with exactly one outcome; a drop-off that
later progress contradicts is always retracted; no deadline is reported before the
watermark has passed it; and a core restored from snapshots goes on like the original."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.definitions import DefinitionSpec
from stream_processors.journeys.core.engine import JourneyCore
from stream_processors.journeys.core.outputs import (
    DropOff,
    JourneyUpdate,
    Output,
    Retraction,
)

MIN = 60_000
T0 = 1_740_787_200_000
LATENESS = 5 * MIN  # the watermark trails the newest timely event by this much
LATE = ("store", "call_center")


def stage(name: str, *types: str, channels: tuple[str, ...] = (), **more: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"channels": list(channels), "event_types": list(types)}
    if "properties" in more:
        rule["properties"] = more.pop("properties")
    return {"name": name, "match": [rule], **more}


FLOW = DefinitionSpec.model_validate(
    {
        "id": "flow",
        "version": 1,
        "reopen_window": "15m",
        "lifetime": "80m",
        "stages": [
            stage("a", "a", channels=("web", "app"), time_limit="30m"),
            stage("b", "b", time_limit="20m"),
            stage("c", "c", channels=("web", "store"), time_limit="40m"),
            stage("done", "done", success=True),
            stage("cancel", "cancel", failure=True),
        ],
    }
)
CASE = DefinitionSpec.model_validate(
    {
        "id": "case",
        "version": 3,
        "reopen_window": "10m",
        "stages": [
            stage("open", "help", channels=("web",), time_limit="45m"),
            stage("call", "call", channels=("call_center",), time_limit="30m"),
            stage(
                "fixed",
                "call_end",
                channels=("call_center",),
                properties={"ok": True},
                success=True,
            ),
        ],
    }
)
DEFINITIONS = (FLOW, CASE)
LIMITS = {d.id: {s.name: s.time_limit for s in d.stages} for d in DEFINITIONS}
# For the independent check of drop-offs: which stage an event reaches, per definition.
STAGE_OF = {
    "flow": {("a", "web"): 0, ("a", "app"): 0, ("c", "web"): 2, ("c", "store"): 2}
    | {("b", ch): 1 for ch in ("web", "app", "store", "call_center")}
    | {("done", ch): 3 for ch in ("web", "app", "store", "call_center")}
    | {("cancel", ch): 4 for ch in ("web", "app", "store", "call_center")},
    "case": {("help", "web"): 0, ("call", "call_center"): 1},
}
TYPES = ("a", "b", "c", "done", "cancel", "noise", "help", "call", "call_end")
CHANNELS = ("web", "app", "store", "call_center")


@dataclass(frozen=True)
class Sent:
    event: dict[str, Any]
    person: str
    t: int
    arrival: int


# Channels each stage's events may come from (late-arriving ones included), and noise.
WALKS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "flow": [("a", ("web", "app")), ("b", CHANNELS), ("c", ("web", "store")), ("done", CHANNELS)],
    "case": [("help", ("web",)), ("call", ("call_center",)), ("call_end", ("call_center",))],
}


@st.composite
def histories(draw: st.DrawFn) -> list[Sent]:
    """Two persons walking the definitions over about four hours, with gaps that sometimes
    exceed the time limits, failures, repeats and noise; each event has an arrival time:
    timely channels within the watermark's lateness, late-arriving ones up to six hours
    late."""
    steps: list[tuple[str, str, int, str]] = []  # (type, channel, minute, person)
    for _ in range(draw(st.integers(1, 5))):
        person = draw(st.sampled_from(("p1", "p2")))
        walk = WALKS[draw(st.sampled_from(("flow", "case")))]
        minute = draw(st.integers(0, 150))
        stage = 0
        for _ in range(8):
            if stage >= len(walk):
                break
            event_type, channels = walk[stage]
            if draw(st.integers(0, 9)) == 0:
                event_type = "cancel"
            steps.append((event_type, draw(st.sampled_from(channels)), minute, person))
            minute += draw(st.sampled_from((0, 1, 5, 15, 19, 20, 21, 35, 45, 60)))
            stage += draw(st.sampled_from((1, 0, 1, 1, 2, 9)))  # advance, repeat, skip, stop
    for _ in range(draw(st.integers(0, 8))):
        steps.append(
            (
                draw(st.sampled_from(TYPES)),
                draw(st.sampled_from(CHANNELS)),
                draw(st.integers(0, 240)),
                draw(st.sampled_from(("p1", "p2"))),
            )
        )
    out = []
    for n, (event_type, channel, minute, person) in enumerate(steps):
        t = T0 + minute * MIN
        late = channel in LATE
        delay = draw(st.integers(0, 6 * 60 * MIN if late else LATENESS - 1))
        props = {"ok": draw(st.booleans())} if event_type == "call_end" else {}
        event = {
            "event_id": f"e{n:03d}",
            "channel": channel,
            "event_type": event_type,
            "occurred_at": t,
            "touchpoint": f"/{event_type}",
            "properties": props,
        }
        out.append(Sent(event, person, t, t + delay))
    return out


@dataclass
class Fed:
    outputs: list[tuple[int, Output]]  # (watermark when emitted, record)


def feed(sent: list[Sent], in_order: bool) -> Fed:
    """In order: event-time order, the watermark right behind each event. Otherwise: by
    arrival, the watermark trailing the newest timely event by the lateness."""
    core = JourneyCore(DEFINITIONS)
    fed = Fed([])

    def take(records: list[Output]) -> None:
        fed.outputs += [(core.watermark_ms, r) for r in records]

    if in_order:
        for s in sorted(sent, key=lambda s: (s.t, s.event["event_id"])):
            take(core.observe(s.event, s.person))
            take(core.advance_watermark(s.t - 1))
    else:
        high = None
        for s in sorted(sent, key=lambda s: (s.arrival, s.event["event_id"])):
            take(core.observe(s.event, s.person))
            if s.event["channel"] not in LATE:
                high = s.t if high is None else max(high, s.t)
                take(core.advance_watermark(high - LATENESS))
    end = T0 + 24 * 60 * MIN  # every deadline has passed; nothing is sealed yet
    take(core.advance_watermark(end, end))
    return fed


def in_force(records: list[Any]) -> set[str]:
    """Drop-off ids whose last record is the drop-off itself, not a retraction of it."""
    last: dict[str, bool] = {}
    for record in records:
        if isinstance(record, DropOff):
            last[record.dropoff_id] = True
        elif isinstance(record, Retraction):
            last[record.retracted_id] = False
    return {oid for oid, standing in last.items() if standing}


def final(fed: Fed) -> dict[str, JourneyUpdate]:
    latest: dict[str, JourneyUpdate] = {}
    for _, record in fed.outputs:
        if isinstance(record, JourneyUpdate):
            latest[record.journey_id] = record
    return latest


def outcomes(fed: Fed) -> set[tuple[Any, ...]]:
    return {
        (j.journey_id, j.person_id, j.status, j.stage, j.stages, j.started_ms, j.ended_ms)
        for j in final(fed).values()
        if j.status != "merged"
    }


@settings(max_examples=300, deadline=None)
@given(histories())
def test_arrival_order_within_the_allowed_lateness_changes_no_outcome(sent: list[Sent]) -> None:
    assert outcomes(feed(sent, in_order=False)) == outcomes(feed(sent, in_order=True))


@settings(max_examples=200, deadline=None)
@given(histories(), st.booleans())
def test_every_journey_has_exactly_one_outcome(sent: list[Sent], in_order: bool) -> None:
    fed = feed(sent, in_order)
    net: Counter[str] = Counter()
    last: dict[str, tuple[str, int | None]] = {}
    for _, record in fed.outputs:
        if isinstance(record, DropOff):
            net[record.journey_id] += 1
        elif isinstance(record, Retraction):
            net[record.journey_id] -= 1
        elif isinstance(record, JourneyUpdate):
            state = (record.status, record.ended_ms)
            if record.status in ("converted", "expired") and last.get(record.journey_id) != state:
                net[record.journey_id] += 1
            last[record.journey_id] = state
        assert all(0 <= n <= 1 for n in net.values()), "two outcomes stood at once"
    for journey in final(fed).values():
        expected = 0 if journey.status == "merged" else 1
        assert journey.status != "open"
        assert net[journey.journey_id] == expected, journey


@settings(max_examples=300, deadline=None)
@given(histories(), st.booleans())
def test_a_contradicted_drop_off_is_always_retracted(sent: list[Sent], in_order: bool) -> None:
    fed = feed(sent, in_order)
    records = [record for _, record in fed.outputs]
    starts = [
        (j.person_id, j.definition_id, j.started_ms)
        for j in final(fed).values()
        if j.status != "merged"
    ]
    for i, drop in enumerate(records):
        if not isinstance(drop, DropOff):
            continue
        retracted = any(
            isinstance(r, Retraction) and r.retracted_id == drop.dropoff_id
            for r in records[i + 1 :]
        )
        started = final(fed)[drop.journey_id].started_ms
        if drop.reason == "time_limit" and _contradicted(drop, sent, starts, started):
            assert retracted, drop
        if retracted:  # and only contradicted ones are: it is not an outcome in force
            assert drop.dropoff_id not in in_force(records), drop


def _contradicted(
    drop: DropOff, sent: list[Sent], starts: list[tuple[str, str, int]], started: int
) -> bool:
    """Progress of the same person and definition beyond the dropped stage, in time or
    within the reopen window (when no newer journey had started by then, and the journey's
    lifetime had not passed)."""
    definition = next(d for d in DEFINITIONS if d.id == drop.definition_id)
    lifetime = definition.lifetime.total_seconds() * 1000 if definition.lifetime else None
    stage = [s.name for s in definition.stages].index(drop.stage)
    reopen = int(definition.reopen_window.total_seconds() * 1000) if definition.reopen_window else 0
    for s in sent:
        reached = STAGE_OF[drop.definition_id].get((s.event["event_type"], s.event["channel"]))
        ok = s.event["properties"].get("ok") is True
        if drop.definition_id == "case" and s.event["channel"] == "call_center" and ok:
            reached = 2 if s.event["event_type"] == "call_end" else reached
        if s.person != drop.person_id or reached is None or reached <= stage:
            continue
        if drop.stage_entered_ms < s.t <= drop.deadline_ms:
            return True
        newer = any(
            p == drop.person_id and d == drop.definition_id and drop.deadline_ms < t0 <= s.t
            for p, d, t0 in starts
        )
        failure = definition.stages[reached].failure
        alive = lifetime is None or s.t <= started + lifetime
        in_window = drop.deadline_ms < s.t <= drop.deadline_ms + reopen
        if in_window and alive and not (newer or failure):
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(histories(), st.booleans())
def test_no_deadline_is_reported_before_the_watermark_passes_it(
    sent: list[Sent], in_order: bool
) -> None:
    for watermark, record in feed(sent, in_order).outputs:
        if isinstance(record, DropOff) and record.reason == "time_limit":
            limit = LIMITS[record.definition_id][record.stage]
            assert limit is not None
            assert record.deadline_ms == record.stage_entered_ms + limit.total_seconds() * 1000
            assert record.deadline_ms <= watermark
        if isinstance(record, JourneyUpdate) and record.status == "expired":
            assert record.ended_ms == record.started_ms + 80 * MIN
            assert record.ended_ms <= watermark


@settings(max_examples=200, deadline=None)
@given(histories(), st.integers(0, 60))
def test_an_identity_merge_gives_what_one_person_from_the_start_gives(
    sent: list[Sent], when: int
) -> None:
    """p2 turns out to be p1 after `when` events: the outcomes are those of p1 owning every
    event from the start (journeys of both folded together, the later start merged)."""
    ordered = sorted(sent, key=lambda s: (s.t, s.event["event_id"]))
    core = JourneyCore(DEFINITIONS)
    records: list[Output] = []
    for n, s in enumerate(ordered):
        if n == when:
            records += core.move_person("p2", "p1")
        records += core.observe(s.event, s.person)
        records += core.advance_watermark(s.t - 1)
    if when >= len(ordered):
        records += core.move_person("p2", "p1")
    end = T0 + 24 * 60 * MIN
    records += core.advance_watermark(end, end)
    merged = outcomes(Fed([(0, r) for r in records]))
    alone = [Sent(s.event, "p1", s.t, s.arrival) for s in sent]
    assert merged == outcomes(feed(alone, in_order=True))


@settings(max_examples=200, deadline=None)
@given(histories(), st.booleans())
def test_a_drop_off_names_its_last_channel_among_its_channels(
    sent: list[Sent], in_order: bool
) -> None:
    for _, record in feed(sent, in_order).outputs:
        if isinstance(record, DropOff):
            assert record.last_channel in record.channels, record


@settings(max_examples=200, deadline=None)
@given(histories(), st.integers(0, 40))
def test_a_core_restored_from_snapshots_goes_on_like_the_original(
    sent: list[Sent], cut: int
) -> None:
    """Snapshots taken after any of the events (buffered ones included) and restored into a
    new core: the rest of the stream gives both cores the same records (the order of
    records of different journeys may differ: the restored core files its deadlines anew)."""
    arrivals = sorted(sent, key=lambda s: (s.arrival, s.event["event_id"]))
    core = JourneyCore(DEFINITIONS)
    high = None

    def step(on: JourneyCore, s: Sent, high: int | None) -> tuple[list[Output], int | None]:
        records = on.observe(s.event, s.person)
        if s.event["channel"] not in LATE:
            high = s.t if high is None else max(high, s.t)
            records += on.advance_watermark(high - LATENESS)
        return records, high

    for s in arrivals[:cut]:
        _, high = step(core, s, high)
    restored = JourneyCore(DEFINITIONS)
    for pid in core.persons():
        restored.restore_person(pid, orjson.loads(orjson.dumps(core.snapshot_person(pid))))
    restored.restore_watermark(core.watermark_ms)
    records: dict[str, Counter[Output]] = {}
    for name, on in (("original", core), ("restored", restored)):
        going: list[Output] = []
        mark = high
        for s in arrivals[cut:]:
            more, mark = step(on, s, mark)
            going += more
        end = T0 + 24 * 60 * MIN
        records[name] = Counter(going + on.advance_watermark(end, end))
    assert records["restored"] == records["original"]


def test_a_late_failure_at_the_passed_time_limit_replaces_the_drop_off_under_a_new_id() -> None:
    """Found by the property above: a store `cancel` exactly at stage b's time limit, known
    only after the time limit fired, turns the time-limit drop-off into a failure drop-off at
    the same stage and time. The retraction must not cancel the new one too."""

    def event(n: int, kind: str, channel: str, minutes: int) -> Sent:
        t = T0 + minutes * MIN
        body = {
            "event_id": f"e{n:03d}",
            "channel": channel,
            "event_type": kind,
            "occurred_at": t,
            "touchpoint": f"/{kind}",
            "properties": {},
        }
        return Sent(body, "p1", t, t)

    late_cancel = event(3, "cancel", "store", 20)
    sent = [
        event(1, "a", "web", 0),
        event(2, "b", "web", 0),
        event(4, "noise", "web", 30),
        Sent(late_cancel.event, "p1", late_cancel.t, T0 + 31 * MIN),
    ]
    records = [record for _, record in feed(sent, in_order=False).outputs]
    drops = [r for r in records if isinstance(r, DropOff)]
    assert [(d.reason, d.failure_stage) for d in drops] == [
        ("time_limit", None),
        ("failure", "cancel"),
    ]
    retracted = [r.retracted_id for r in records if isinstance(r, Retraction)]
    assert retracted == [drops[0].dropoff_id]
    assert in_force(records) == {drops[1].dropoff_id} != {drops[0].dropoff_id}
