"""Late channels are heard: the windows of series that only late channels feed (a
call center's or a store's export, `processor.late_channels`) stay countable for the late
tolerance instead of the allowed lateness, in the partitions and in the merger; what they
reveal is raised as an alert marked late, with how late it was found; everything else is
dropped at the allowed lateness as before; and the state with such windows restores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from deploy.commands.alerts import render_show
from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.friction.alerts.core.bodies import _facts
from stream_processors.friction.alerts.core.groups import AlertGroups
from stream_processors.friction.alerts.core.incidents import IncidentConfig, Incidents
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.core.rules import Alert, Series
from stream_processors.friction.core.series import key_channel, late_channel_keys
from stream_processors.friction.core.window_merge import Partial, WindowMerger
from stream_processors.friction.core.window_state import STATE_VERSION, RecordedWindows
from stream_processors.friction.core.windows import TumblingWindows
from tests.unit.friction.test_stage import (
    T0,
    RecordingSender,
    alerts,
    detection,
    iso,
    stage,
    stitched,
    touch,
)

MIN = 60_000
HOUR = 60 * MIN
SIZE, LATENESS, TOLERANCE = timedelta(minutes=5), timedelta(hours=1), timedelta(hours=72)
CALLS = ("friction", "call_center:queue")
CALLS_VOLUME = ("volume", "call_center:contact-center")
WEB = ("friction", "web:/checkout")
LATE = late_channel_keys({"store", "call_center"})


def windows(cls: type[TumblingWindows] = TumblingWindows) -> TumblingWindows:
    return cls(SIZE, LATENESS, late_keys=LATE, late_lateness=TOLERANCE)


def test_which_series_only_late_channels_feed() -> None:
    assert LATE is not None
    assert [key_channel(k) for k in (CALLS, CALLS_VOLUME, WEB)] == ["call_center"] * 2 + ["web"]
    assert LATE(("stage", "support:contact:call_center")) and LATE(("friction", "store:till"))
    assert not LATE(("stage", "support:contact:*")) and not LATE(WEB)
    assert not LATE(("friction", "call_center_like:x"))
    assert late_channel_keys(()) is None


def test_a_late_channels_row_hours_after_its_window_closed_is_counted() -> None:
    w = windows()
    w.add(CALLS, 13 * HOUR, ("exposures",))
    w.add(WEB, 13 * HOUR, ("exposures",))
    w.advance(17 * HOUR)  # 13:00-13:05 closed 4 h ago, 3 h past the allowed lateness
    assert w.open_windows() > 0
    assert w.add(CALLS, 13 * HOUR + MIN, ("exposures", "long_queue_wait"))
    (again,) = w.advance(17 * HOUR).windows
    assert (again.key, again.start_ms, again.version) == (CALLS, 13 * HOUR, 2)
    assert again.counts == {"exposures": 2, "long_queue_wait": 1}
    assert again.previous == {"exposures": 1}
    # A window of a late channel that closed empty takes its first rows as late as well.
    assert w.add(CALLS_VOLUME, 14 * HOUR, ("events",))
    (first,) = w.advance(17 * HOUR).windows
    assert first.key == CALLS_VOLUME and first.previous == {} and first.version == 1
    assert w.late_dropped == 0


def test_a_timely_channels_row_past_the_allowed_lateness_is_still_dropped() -> None:
    w = windows()
    w.add(WEB, 13 * HOUR, ("exposures",))
    w.add(CALLS, 13 * HOUR, ("exposures",))
    w.advance(17 * HOUR)
    assert not w.add(WEB, 13 * HOUR + MIN, ("exposures",))
    assert not w.add(("stage", "support:contact:*"), 13 * HOUR, ("entered",))
    assert w.late_dropped == 2
    assert w.advance(17 * HOUR).windows == ()
    # Its window is gone; the late channel's of the same start is kept.
    assert w.open_windows() == 1


def test_beyond_the_tolerance_a_late_channels_row_is_dropped_and_counted() -> None:
    w = windows()
    w.add(CALLS, 13 * HOUR, ("exposures",))
    w.advance(13 * HOUR + 73 * HOUR)
    assert w.open_windows() == 0  # kept no longer than the tolerance
    assert not w.add(CALLS, 13 * HOUR + MIN, ("exposures",))
    assert w.late_dropped == 1
    # Just within it, it counts.
    w2 = windows()
    w2.add(CALLS, 13 * HOUR, ("exposures",))
    w2.advance(13 * HOUR + 72 * HOUR)
    assert w2.add(CALLS, 13 * HOUR + MIN, ("exposures",))


def test_without_late_keys_every_window_goes_at_the_allowed_lateness() -> None:
    w = TumblingWindows(SIZE, LATENESS)
    w.add(CALLS, 13 * HOUR, ("exposures",))
    w.advance(17 * HOUR)
    assert not w.add(CALLS, 13 * HOUR + MIN, ("exposures",))
    assert w.open_windows() == 0


def test_the_merger_keeps_late_channels_windows_for_the_tolerance() -> None:
    merger = WindowMerger(1, SIZE, LATENESS, late_keys=LATE, late_lateness=TOLERANCE)
    start = 13 * HOUR
    first = [Partial(k, start, {"exposures": 1}, None, False) for k in (CALLS, WEB)]
    merger.apply(0, first, start + 5 * MIN)
    merger.apply(0, [], 17 * HOUR)
    merger.take_changes()
    later = [
        Partial(CALLS, start, {"exposures": 4, "long_queue_wait": 3}, {"exposures": 1}, False),
        Partial(WEB, start, {"exposures": 2}, {"exposures": 1}, False),
    ]
    advance = merger.apply(0, later, 17 * HOUR)
    (again,) = advance.windows
    assert again.key == CALLS and again.version == 2
    assert again.counts == {"exposures": 4, "long_queue_wait": 3}
    assert again.previous == {"exposures": 1}
    assert merger.late_dropped == 1  # the web partial
    touched, gone = merger.take_changes()
    assert touched == {start} and gone == set()
    merger.apply(0, [], start + 73 * HOUR)
    assert merger.take_changes()[1] >= {start}
    merger.apply(0, [Partial(CALLS, start, {"exposures": 5}, {"exposures": 4}, False)], None)
    assert merger.late_dropped == 2


def test_the_state_with_late_windows_restores() -> None:
    w = windows(RecordedWindows)
    assert isinstance(w, RecordedWindows)
    w.add(CALLS, 13 * HOUR, ("exposures",))
    w.add(WEB, 13 * HOUR, ("exposures",))
    w.advance(17 * HOUR)
    touched, gone = w.take_changes()
    assert 13 * HOUR in touched and gone == set()
    # Written as the previous version wrote it: the same meta and per-start rows.
    meta = w.snapshot_meta()
    assert meta[0] == STATE_VERSION == 1
    starts = {s: rows for s in touched if (rows := w.snapshot_start(s)) is not None}
    counts = {"exposures": 1}
    assert starts[13 * HOUR] == [["friction", "call_center:queue", counts, counts, 1, True]]

    restored = windows(RecordedWindows)
    assert isinstance(restored, RecordedWindows)
    written = orjson.loads(orjson.dumps({str(k): v for k, v in starts.items()}))
    restored.restore(orjson.loads(orjson.dumps(meta)), {int(k): v for k, v in written.items()})
    assert restored.add(CALLS, 13 * HOUR + MIN, ("exposures",))
    assert not restored.add(WEB, 13 * HOUR + MIN, ("exposures",))
    (again,) = restored.advance(17 * HOUR).windows
    assert again.version == 2 and again.counts == {"exposures": 2}

    merger = WindowMerger(1, SIZE, LATENESS, late_keys=LATE, late_lateness=TOLERANCE)
    merger.apply(0, [Partial(CALLS, 13 * HOUR, {"exposures": 1}, None, False)], 17 * HOUR)
    copy = WindowMerger(1, SIZE, LATENESS, late_keys=LATE, late_lateness=TOLERANCE)
    copy.restore(merger.snapshot_meta(), {13 * HOUR: merger.snapshot_start(13 * HOUR) or []})
    copy.apply(0, [Partial(CALLS, 13 * HOUR, {"exposures": 3}, {"exposures": 1}, False)], None)
    assert copy.late_dropped == 0


# -- alerts marked late ---------------------------------------------------------------------


def _alert(start_ms: int) -> Alert:
    begin = datetime.fromtimestamp(start_ms / 1000, UTC)
    return Alert(
        alert_id=f"a{start_ms}",
        kind="friction_spike",
        rule="threshold",
        series=Series("friction", "call_center:queue", "friction"),
        window_start=begin,
        window_end=begin + SIZE,
        window_version=2,
        windows=1,
        observed=9,
        volume=10,
        expected=1.0,
        p_value=None,
        severity="warning",
        explanation="waits",
    )


def test_an_alert_on_windows_that_had_closed_is_marked_late_by_how_much() -> None:
    incidents = Incidents(IncidentConfig(SIZE, 3, TOLERANCE))
    size = 5 * MIN
    incidents.process([], range(0, 17 * HOUR, size))  # every window to 17:00 decided
    (opened, resolved) = incidents.process([_alert(13 * HOUR)], range(0))
    assert opened.late and opened.found_late_by == (17 * HOUR - size - 13 * HOUR) // 1000
    assert opened.started_at.hour == 13  # its event time
    assert resolved.status == "resolved" and resolved.late
    (on_time,) = incidents.process([_alert(17 * HOUR)], range(17 * HOUR, 17 * HOUR + size, size))
    assert not on_time.late and on_time.found_late_by == 0
    # The mark survives a restart, and records written before it existed read as on time.
    copy = Incidents(IncidentConfig(SIZE, 3, TOLERANCE))
    copy.restore(orjson.loads(orjson.dumps(incidents.snapshot())))
    assert {r.late for r in copy.records()} == {True, False}
    old = opened.to_dict()
    del old["late"], old["found_late_by"]
    assert not AlertRecord.from_dict(old).late
    # An alert is late when all its incidents are.
    groups = AlertGroups()
    (group,) = groups.process([opened], None)
    record = group.record()
    assert record.late and record.found_late_by == opened.found_late_by
    row = record.row()
    assert row["late"] is True and row["found_late_by"] == opened.found_late_by
    assert "found late, 3.9 h after its first window" in render_show(record, [record])
    facts = dict(_facts(record))
    assert facts["Found late"] == "3 h 55 min after its first window"
    assert "Found late" not in dict(_facts(on_time))


def _calls(at: int, wait: int, n: int) -> list[bytes]:
    """`n` contacts answered after `wait` seconds, each ended (an exposure) a minute later."""
    return [
        orjson.dumps(
            {
                "event_id": f"c{at}-{i}-{event_type}",
                "channel": "call_center",
                "source": "contact-center",
                "event_type": event_type,
                "occurred_at": iso(at + i * 1000 + lag),
                "touchpoint": "queue",
                "identity": {"customer_id": f"c{i}"},
                "person_id": f"c{i}",
                "properties": {"wait_seconds": wait},
            }
        )
        for i in range(n)
        for event_type, lag in (("contact_answered", 0), ("contact_ended", MIN))
    ]


def _settings() -> Settings:
    threshold = {"kind": "friction", "scope": "call_center:queue", "max_rate": 0.2}
    return Settings(
        topics={"prefix": "u.", "partitions": 2},
        friction={"stage_series": False, "detector": {"thresholds": [threshold]}},
        alerts={"routing_file": None},
    )


def _run(backfill: bool) -> list[AlertRecord]:
    """Web traffic closes the windows to T0+5 h; then a call-center export of T0+1 h lands,
    every call waiting ten minutes."""
    s = _settings()
    topics = Topics.from_settings(s.topics)
    sender = RecordingSender()
    parts = stage(sender, s)
    offset = 0

    def send(rows: list[bytes], mark: int) -> None:
        nonlocal offset
        for source in (0, 1):
            parts.handle_stitched(stitched(rows if source == 0 else [], mark, source), 0, offset)
            parts.handle_stitched(stitched([], mark, source), 1, offset)
            offset += 1

    for minute in range(0, 5 * 60, 5):
        send([touch(T0 + minute * MIN, "p1")], T0 + minute * MIN)
    calls = _calls(T0 + HOUR, wait=600, n=30)
    if backfill:
        calls = [orjson.dumps({**orjson.loads(c), "backfill": True}) for c in calls]
    late_web = touch(T0 + HOUR, "p2", error="http_500")
    send([*calls, late_web], T0 + 5 * HOUR + MIN)
    assert parts.late_dropped() == 3  # the web row (3 series): past the allowed lateness
    detect = detection(sender, s)
    for n, (value, _key, _p) in enumerate(sender.on(topics.friction_partials)):
        detect.handle(value, n)
    return [r for r in alerts(sender, topics) if r.series.scope == "call_center:queue"]


def test_a_late_export_revealing_an_incident_raises_an_alert_marked_late() -> None:
    records = _run(backfill=False)
    assert records, "the late export's incident was not raised"
    first = records[0]
    assert first.status == "firing" and first.late
    assert first.started_at.timestamp() * 1000 == T0 + HOUR  # its event time
    # The watermark stood at T0+5 h when the window ending at T0+1 h 05 was re-decided.
    assert 3 * 3600 < first.found_late_by <= 4 * 3600
    assert all(r.late for r in records)


def test_a_backfilled_export_raises_nothing() -> None:
    assert _run(backfill=True) == []


def test_a_late_export_of_a_quiet_queue_enters_the_run_of_windows_and_alerts_late() -> None:
    """Too few exposures per window for a window's own test (10 < `min_exposures`): only the
    run of windows finds it. Windows whose exposures all came late enter the run when the
    export lands, in start order, and the alert they raise is marked late."""
    from stream_processors.friction.core.detector import Detector, DetectorConfig
    from stream_processors.friction.core.windows import one_start_at_a_time

    size = 5 * MIN
    w = windows()
    detector = Detector(DetectorConfig())
    incidents = Incidents(IncidentConfig(SIZE, 3, TOLERANCE))
    raised = []

    def decide(watermark: int) -> None:
        for step in one_start_at_a_time(w.advance(watermark)):
            raised.extend(incidents.process(detector.process(step), step.closed))

    def calls(start: int, waited: int) -> None:
        for i in range(10):
            names = ("exposures", "friction", "long_queue_wait") if i < waited else ("exposures",)
            w.add(CALLS, start + i * 1000, names)
            w.add(WEB, start + i * 1000, ("exposures",))

    for n in range(48):  # four hours on time, nobody waiting long
        calls(n * size, 0)
        decide((n + 1) * size)
    held = range(48 * size, 60 * size, size)  # an hour whose calls come in tomorrow's export
    for start in held:
        for i in range(10):
            w.add(WEB, start + i * 1000, ("exposures",))
        decide(start + size)
    assert raised == []
    for start in held:
        calls(start, 8)  # eight of ten waited long
    decide(60 * size)
    assert raised, "the late export's queue incident was not raised"
    first = raised[0]
    assert first.series.scope == "call_center:queue"
    assert first.series.name in ("friction", "long_queue_wait")
    assert first.late and first.status == "firing"
    assert 48 * size <= first.started_at.timestamp() * 1000 < 60 * size
    assert 0 < first.found_late_by <= 12 * size // 1000


def test_what_a_late_channels_transition_counted_is_remembered_as_long_as_its_window() -> None:
    """A correction subtracts exactly what the first version counted: for a call-center
    transition that holds for the late tolerance (its window can change that long), for a
    web one for the allowed lateness."""
    from stream_processors.friction.rows import read_partials
    from tests.unit.friction.test_stage import journeys_time, transition_row

    sender, s = RecordingSender(), _settings_with_stage_series()
    parts, topics = stage(sender, s), Topics.from_settings(s.topics)
    for source in (0, 1):
        parts.handle_stitched(stitched([], T0 + 5 * MIN, source), 0, source)
    rows = [transition_row("t-web", T0 + 10), transition_row("t-call", T0 + 20, "call_center")]
    parts.handle_transitions(envelope.encode(rows, None), 0, 0)
    offset = 1

    def time_to(at: int) -> None:
        nonlocal offset
        for source in (0, 1):
            parts.handle_stitched(stitched([], at, source), 0, 2 * offset + source)
        journeys_time(parts, 0, at, offset)
        offset += 1

    time_to(T0 + 5 * MIN + 1)
    time_to(T0 + 3 * HOUR)
    assert set(parts.part(0).counted) == {"tt-call"}
    # Retracted four hours later: its window takes the correction back exactly.
    sent = len(sender.on(topics.friction_partials))
    retract = transition_row("t-call", 0, "call_center", retracted=True)
    parts.handle_transitions(envelope.encode([retract], None), 0, offset)
    time_to(T0 + 4 * HOUR)
    later = [
        p
        for value, _k, _p in sender.on(topics.friction_partials)[sent:]
        for p in read_partials(envelope.decode(value or b"").events)[0]
    ]
    entered = [p for p in later if p.key == ("stage", "purchase:checkout:call_center")]
    assert [(p.start_ms, dict(p.counts), dict(p.previous or {})) for p in entered] == [
        (T0, {"entered": 0}, {"entered": 1})
    ]
    assert parts.part(0).counted == {}
    time_to(T0 + 73 * HOUR)
    assert parts.part(0).expiry == {} and parts.part(0).later == {}


def _settings_with_stage_series() -> Settings:
    return Settings(topics={"prefix": "u.", "partitions": 2}, alerts={"routing_file": None})
