"""A late channel's counts are judged once its exports are in: the entries and volume of the
series only late channels feed (`processor.late_channels`) are held `late_count_wait` after
their windows close and judged then, on what they hold. So whether an export landed before or
after its window closed in the stage (which depends on how far the stage trails the stream)
changes no alert, and a source that stops exporting pages a collapse once the wait is over."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial

import orjson
import pytest

from stream_processors.friction.alerts.core.incidents import IncidentConfig, Incidents
from stream_processors.friction.core import detector_state
from stream_processors.friction.core.baselines import BaselineConfig
from stream_processors.friction.core.detector import Detector, DetectorConfig, holds_counts
from stream_processors.friction.core.rules import Alert, Series
from stream_processors.friction.core.series import EVENTS, late_channel_keys
from stream_processors.friction.core.windows import TumblingWindows, one_start_at_a_time

MIN = 60_000
SIZE = 5 * MIN
SIZE_DELTA = timedelta(minutes=5)
EXPORT = ("volume", "call_center:genesys-export")
WEB = ("volume", "web:site")
LATE = late_channel_keys({"call_center"})
WAIT = timedelta(minutes=30)
PER_WINDOW = 30
ON_TIME, SILENT = 36, 12  # windows of steady exports, then of none


def _config(wait: timedelta = WAIT) -> DetectorConfig:
    # One time-of-day bucket: the run of windows is tested from the warm-up on.
    return DetectorConfig(
        baseline=BaselineConfig(season_buckets=1), late_keys=LATE, late_count_wait=wait
    )


def _windows() -> TumblingWindows:
    return TumblingWindows(
        timedelta(minutes=5),
        timedelta(hours=1),
        late_keys=LATE,
        late_lateness=timedelta(hours=72),
    )


Decided = list[tuple[int, Alert]]  # (the start being closed, an alert it raised)


def _feed(
    export_lag: int,
    restart_at: int | None = None,
    wait: timedelta = WAIT,
    exported: Iterable[int] = range(ON_TIME),
    detector: Detector | None = None,
) -> Decided:
    """`ON_TIME` windows of a steady export then `SILENT` of none, web traffic throughout;
    each window's export lands `export_lag` windows after it closed (0: before)."""
    w, out = _windows(), []
    detector = detector or Detector(_config(wait))
    exports: dict[int, list[int]] = {}  # the window whose close lands them -> their starts
    for n in exported:
        exports.setdefault(n + export_lag, []).append(n)
    for n in range(ON_TIME + SILENT):
        for i in range(PER_WINDOW):
            w.add(WEB, n * SIZE + i * 1000, (EVENTS,))
        for start in exports.get(n, []):
            for i in range(PER_WINDOW):
                w.add(EXPORT, start * SIZE + i * 1000, (EVENTS,))
        if restart_at == n:
            detector = _restarted(detector)
        for step in one_start_at_a_time(w.advance((n + 1) * SIZE)):
            out += [(n, a) for a in detector.process(step)]
    return out


def _steady_export(detector: Detector, windows: int) -> TumblingWindows:
    """`windows` windows of the export alone, each landing before its close."""
    w = _windows()
    for n in range(windows):
        for i in range(PER_WINDOW):
            w.add(EXPORT, n * SIZE + i * 1000, (EVENTS,))
        for step in one_start_at_a_time(w.advance((n + 1) * SIZE)):
            detector.process(step)
    return w


def _restarted(detector: Detector) -> Detector:
    written = orjson.loads(orjson.dumps(dict(detector_state.rows(detector))))
    return detector_state.restore(detector.config, written)


def _export_alerts(decided: Decided) -> list[tuple[str, str, int, bool]]:
    return [
        (a.alert_id, a.kind, a.observed, a.retracted)
        for _n, a in decided
        if a.series.scope == EXPORT[1]
    ]


def test_an_export_landing_after_its_window_closed_changes_no_alert() -> None:
    on_time = _feed(export_lag=0)
    assert _export_alerts(on_time), "the export that stopped raised no collapse"
    assert {kind for _id, kind, _o, _r in _export_alerts(on_time)} == {"volume_collapse"}
    for lag in (1, 3, 5):  # up to 25 minutes after the close, within the 30-minute wait
        assert _export_alerts(_feed(export_lag=lag)) == _export_alerts(on_time), lag


def test_a_stopped_export_pages_once_the_wait_is_over() -> None:
    decided = _feed(export_lag=0)
    first_close, first = next((n, a) for n, a in decided if a.series.scope == EXPORT[1])
    first_silent = first.window_end.timestamp() * 1000 // SIZE - first.windows
    assert first_silent >= ON_TIME
    # Judged on the close of the window `late_count_wait` after it, not before.
    waited = int(WAIT.total_seconds() * 1000) // SIZE
    assert first_close >= first.window_start.timestamp() * 1000 // SIZE + waited
    # Held for no time at all, the same silence pages sooner.
    (soon, _a) = next((n, a) for n, a in _feed(0, wait=timedelta(0)) if a.series.scope == EXPORT[1])
    assert soon < first_close


def test_held_counts_survive_a_restart() -> None:
    for lag, at in ((3, ON_TIME - 2), (0, ON_TIME + 3), (5, ON_TIME + 1)):
        assert _export_alerts(_feed(lag, restart_at=at)) == _export_alerts(_feed(lag)), (lag, at)


def test_state_written_before_counts_were_held_restores() -> None:
    """A detector saved by the version that judged late counts on close: no held rows, a
    meta row of three, and a late-fed mark on the export's series, which no longer applies."""
    detector = Detector(_config())
    w = _steady_export(detector, 3)
    rows = orjson.loads(orjson.dumps(dict(detector_state.rows(detector))))
    old: dict[str, object] = {}
    for key, value in rows.items():
        if key == "meta":
            old[key] = value[:3]
        elif key.startswith("s\x1fvolume\x1fcall_center"):
            old[key] = [*value[:3], 0]
        elif not key.startswith("h\x1f"):
            old[key] = value
    restored = detector_state.restore(detector.config, old)
    assert restored.held_windows == 0 and restored._late == {}
    assert restored._held_from is None
    # It holds from the next window it closes.
    for i in range(PER_WINDOW):
        w.add(EXPORT, 3 * SIZE + i * 1000, (EVENTS,))
    for step in one_start_at_a_time(w.advance(4 * SIZE)):
        restored.process(step)
    assert restored.held_windows == 1 and restored._held_from == 3 * SIZE


def test_friction_rates_of_a_late_channel_are_still_judged_on_close() -> None:
    """Only counts wait: a call-center queue's friction spike pages on its window's close."""
    queue = ("friction", "call_center:queue")
    w, detector = _windows(), Detector(_config(timedelta(hours=6)))
    raised: list[tuple[int, Alert]] = []
    share: Callable[[int], int] = lambda n: 1 if n < 24 else 20  # noqa: E731
    for n in range(30):
        for i in range(40):
            names = ("exposures", "long_queue_wait") if i < share(n) else ("exposures",)
            w.add(queue, n * SIZE + i * 1000, names)
        for step in one_start_at_a_time(w.advance((n + 1) * SIZE)):
            raised += [(n, a) for a in detector.process(step)]
    spikes = [(n, a) for n, a in raised if a.kind == "friction_spike"]
    assert spikes and spikes[0][0] == 24
    assert detector.held_windows == 0  # a friction scope has no counts to hold


def _incidents(decided: Decided, wait: timedelta = WAIT) -> list[tuple[int, str, bool]]:
    """The export's incident records as the stage publishes them, step by step."""
    config = _config(wait)
    incidents = Incidents(
        IncidentConfig(SIZE_DELTA, 3, timedelta(days=1), partial(holds_counts, config), wait)
    )
    by_step: dict[int, list[Alert]] = {}
    for n, alert in decided:
        by_step.setdefault(n, []).append(alert)
    out: list[tuple[int, str, bool]] = []
    for n in range(ON_TIME + SILENT):
        for record in incidents.process(by_step.get(n, []), [n * SIZE]):
            if record.series.scope == EXPORT[1]:
                out.append((n, record.status, record.late))
    return out


def test_a_stopped_exports_incident_fires_while_it_stays_stopped() -> None:
    """Its alerts come `late_count_wait` after their windows, every window while the export
    stays away: the incident is on time and firing, not resolved at once."""
    records = _incidents(_feed(export_lag=0))
    assert records and records[0][1] == "firing"
    assert {status for _n, status, _late in records} == {"firing"}
    assert not any(late for _n, _s, late in records)


def test_an_export_later_than_the_wait_raises_nothing_that_stands() -> None:
    """Counts landing after their windows were judged: a window's own collapse alert is
    retracted when they land, and the series is no longer tested for a fall in a run (its
    judged counts fall short of what the baseline learns once they land)."""
    decided = _feed(export_lag=8)  # 40 minutes after the close; the wait is 30
    last: dict[str, Alert] = {}
    for _n, alert in decided:
        if alert.series.scope == EXPORT[1]:
            last[alert.alert_id] = alert
    assert all(a.rule != "cusum" for a in last.values())
    standing = [a for a in last.values() if not a.retracted]
    assert standing, "the export that stopped raised nothing"
    # Each on a window of the silence (the window it was decided on: a pair's last).
    silent_from = ON_TIME * SIZE // 1000
    assert all(a.window_end.timestamp() - SIZE // 1000 >= silent_from for a in standing)


def test_a_key_first_seen_in_a_late_version_is_held_as_if_it_came_on_time() -> None:
    """Its windows closed before its rows landed are held (empty) too: the baseline learns
    the same windows whether its first export beat the close or not."""
    exported = [0, *range(5, ON_TIME)]
    runs = []
    for lag in (0, 3):
        detector = Detector(_config())
        alerts = _export_alerts(_feed(lag, exported=exported, detector=detector))
        baseline = detector._baselines[Series("volume", EXPORT[1], EVENTS)]
        runs.append((alerts, baseline.windows, round(baseline.hits, 9)))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("revised", [False, True])
@pytest.mark.parametrize("changed", ["no late channels", "no wait"])
def test_counts_held_for_a_channel_no_longer_late_are_judged_at_the_next_close(
    changed: str, revised: bool
) -> None:
    """`processor.late_channels` or the wait changed across a restart: what was held is
    judged first, in start order, before the key's next window is judged on close; a held
    window revised before that close is still held, and judged on its revised counts."""
    detector = Detector(_config())
    w = _steady_export(detector, 10)
    assert detector.held_windows == 6
    rows = orjson.loads(orjson.dumps(dict(detector_state.rows(detector))))
    now = _config_without_late() if changed == "no late channels" else _config(timedelta(0))
    restored = detector_state.restore(now, rows)
    assert restored.held_windows == 6
    if revised:  # window 7 gains as many rows again, late
        for i in range(PER_WINDOW):
            w.add(EXPORT, 7 * SIZE + i * 1000 + 500, (EVENTS,))
    for i in range(PER_WINDOW):
        w.add(EXPORT, 10 * SIZE + i * 1000, (EVENTS,))
    for step in one_start_at_a_time(w.advance(11 * SIZE)):
        restored.process(step)
    assert restored.held_windows == 0
    series = Series("volume", EXPORT[1], EVENTS)
    baseline = restored._baselines[series]
    assert baseline.windows == 11  # every window once
    assert restored._last[series].start == 10 * SIZE
    assert series not in restored._late  # nothing it judged has changed since
    # As if every window had come on time to a detector with the new settings.
    on_time = Detector(now)
    w = _windows()
    for n in range(11):
        for i in range(PER_WINDOW * (2 if revised and n == 7 else 1)):
            w.add(EXPORT, n * SIZE + i * 500, (EVENTS,))
        for step in one_start_at_a_time(w.advance((n + 1) * SIZE)):
            on_time.process(step)
    assert round(baseline.hits, 9) == round(on_time._baselines[series].hits, 9)


def _config_without_late() -> DetectorConfig:
    return DetectorConfig(baseline=BaselineConfig(season_buckets=1))


def test_no_wait_judges_a_late_channels_counts_on_close_like_the_rest() -> None:
    """A wait of 0 holds nothing: the same alerts as a detector that knows no late channel."""
    series = Series("volume", EXPORT[1], EVENTS)
    assert holds_counts(_config(), series)
    assert not holds_counts(_config(timedelta(0)), series)
    for lag in (0, 3):
        unheld = Detector(_config(timedelta(0)))
        alerts = _feed(lag, detector=unheld)
        assert unheld.held_windows == 0
        plain = _feed(lag, detector=Detector(_config_without_late()))
        assert [(n, a.alert_id, a.observed) for n, a in alerts] == [
            (n, a.alert_id, a.observed) for n, a in plain
        ], lag
