"""The detector's memory as JSON data, so a restarted stage keeps every baseline.

`Detector` keeps its learning in plain fields: a `Baseline` per series (decayed sums, the
time-of-day buckets, the learned dispersion), the last window seen per series (for the pair
test), the signal names seen per friction scope, when each window key last had data, and
the alerts it may still retract (a row per series and rule, `a<sep><rule><sep><series>`:
one row for them all outgrew a Kafka message once a collapse alerted every window of a day;
the meta row's list of them is read still, and written empty); per series its CUSUM run
(`sequential.Run`, a third element of the series row since the tests over the run of
windows came: rows without it restore with an empty run), and per stage series its entry
cohorts in flight and progression-by-age curve
(`progression.StageProgress`, rows `p<sep><scope>`; state without them restores with none,
learning the curve from the next windows on); per late channel's window whose counts wait to
be judged, its counts (rows `h<sep><kind><sep><scope><sep><start>`), and in the meta row the
last start closed and the first whose counts were held (state written before counts were
held restores with none held, holding from the next window closed). `DetectorMemory` writes
them as rows keyed the way a stage
changelog wants them (one row per series, per window key, and one for the rest) and builds
a detector back from such rows; the rows of a restored detector are the rows it was saved
from.

It reads the detector's and the baselines' private fields: they are the detector's own
state, and this module is its persistence, kept apart so the detector stays a plain
algorithm.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from stream_processors.friction.core.baselines import Baseline
from stream_processors.friction.core.detector import (
    Detector,
    DetectorConfig,
    _Held,
    _Seen,
    holds_counts,
)
from stream_processors.friction.core.progression import StageProgress
from stream_processors.friction.core.rules import Alert, AlertKind, Rule, Series, Severity
from stream_processors.friction.core.sequential import Run

STATE_VERSION = 1
SERIES = "s"  # row key prefixes
KEY = "k"
PROGRESS = "p"
HELD = "h"
ALERTED = "a"  # the alerts of one series and rule it may still retract
META = "meta"
_SEP = "\x1f"


def series_key(series: Series) -> str:
    return _SEP.join((SERIES, series.kind, series.scope, series.name))


def rows(detector: Detector) -> Iterator[tuple[str, Any]]:
    """Every row of the detector's state: `(key, JSON-ready value)`."""
    d = detector
    for series, baseline in d._baselines.items():
        seen = d._last.get(series)
        last = None if seen is None else [seen.start, seen.hits, seen.trials, seen.expected]
        run = d._runs.get(series)
        late = d._late.get(series)
        yield series_key(series), [_baseline(baseline), last, run.to_json() if run else None, late]
    for scope, stage in d.progressions.stages.items():
        yield _SEP.join((PROGRESS, scope)), _progress(stage)
    for (kind, scope), last_data in d._last_data.items():
        yield _SEP.join((KEY, kind, scope)), [last_data, sorted(d._names.get((kind, scope), ()))]
    alerted: dict[tuple[Series, str], list[Any]] = {}
    for (series, start, rule), alert in d._alerted.items():
        alerted.setdefault((series, rule), []).append([start, _alert(alert)])
    for (of, by), found in alerted.items():
        yield _SEP.join((ALERTED, by, *of)), found
    for ((kind, scope), start), held in d._held.items():
        yield (
            _SEP.join((HELD, kind, scope, str(start))),
            [
                dict(held.counts),
                held.version,
                held.backfill,
            ],
        )
    yield META, [STATE_VERSION, d._backfilling, [], [d._closed_ms, d._held_from]]


def restore(config: DetectorConfig, data: Mapping[str, Any]) -> Detector:
    """A detector with the state `rows()` wrote (`data`: key -> value, other keys ignored)."""
    d = Detector(config)
    meta = data.get(META)
    if meta is not None:
        _load_meta(d, meta)
    # Written before late channels' counts were held: their late-fed marks came from
    # judging them on close, which no longer happens.
    before_held = meta is not None and len(meta) <= 3
    for name, value in data.items():
        parts = name.split(_SEP)
        if parts[0] == SERIES and len(parts) == 4:
            _load_series(d, Series(parts[1], parts[2], parts[3]), value, before_held)
        elif parts[0] == HELD and len(parts) == 4:
            counts, version, backfill = value
            held = _Held({str(n): int(c) for n, c in counts.items()}, int(version), bool(backfill))
            d._held[((parts[1], parts[2]), int(parts[3]))] = held
        elif parts[0] == PROGRESS and len(parts) == 2:
            d.progressions.stages[parts[1]] = _load_progress(d, value)
        elif parts[0] == ALERTED and len(parts) == 5:
            _load_alerted(d, parts, value)
        elif parts[0] == KEY and len(parts) == 3:
            last_data, names = value
            d._last_data[(parts[1], parts[2])] = int(last_data)
            if names:
                d._names[(parts[1], parts[2])] = set(names)
    return d


def _load_meta(d: Detector, meta: list[Any]) -> None:
    version, backfilling, alerted = meta[:3]
    if version != STATE_VERSION:
        raise ValueError(f"detector state of an unknown version: {version!r}")
    d._backfilling = bool(backfilling)
    if len(meta) > 3:
        closed, held_from = meta[3]
        d._closed_ms = None if closed is None else int(closed)
        d._held_from = None if held_from is None else int(held_from)
    for series, start, rule, alert in alerted:
        d._alerted[(Series(*series), int(start), cast(Rule, rule))] = _load_alert(alert)


def _load_series(d: Detector, series: Series, value: list[Any], before_held: bool) -> None:
    state, last = value[0], value[1]
    if len(value) > 2 and value[2] is not None:
        d._runs[series] = Run.from_json(value[2])
    late = value[3] if len(value) > 3 else None
    if late is not None and not (before_held and holds_counts(d.config, series)):
        d._late[series] = int(late)
    d._baselines[series] = _load_baseline(d, state)
    if last is not None:
        start, hits, trials, expected = last
        d._last[series] = _Seen(int(start), int(hits), int(trials), expected)


def _load_alerted(d: Detector, parts: list[str], value: list[Any]) -> None:
    series = Series(parts[2], parts[3], parts[4])
    for start, alert in value:
        d._alerted[(series, int(start), cast(Rule, parts[1]))] = _load_alert(alert)


def _progress(stage: StageProgress) -> list[Any]:
    cohorts = [[start, n, moved] for start, (n, moved) in sorted(stage.cohorts.items())]
    evidence = [[start, *e] for start, e in sorted(stage.evidence.items())]
    curve = [_baseline(b) for b in stage.curve]
    return [cohorts, curve, stage.run.to_json(), evidence, stage.carry]


def _load_progress(d: Detector, value: list[Any]) -> StageProgress:
    # Rows written before the cohorts kept their own evidence have three elements: the
    # test starts again from the next window (as after a restart with no run).
    cohorts, curve, run = value[:3]
    stage = d.progressions.stage("")  # a fresh one, of the configured shape
    d.progressions.stages.pop("", None)
    stage.cohorts = {int(start): [int(n), int(moved)] for start, n, moved in cohorts}
    for k, state in enumerate(curve[: len(stage.curve)]):
        stage.curve[k] = _load_baseline(d, state)
    stage.run = Run.from_json(run)
    if len(value) >= 5:
        stage.evidence = {int(e[0]): [float(x) for x in e[1:]] for e in value[3]}
        stage.carry = [[float(x) for x in c] for c in value[4]]
    return stage


def _baseline(b: Baseline) -> list[Any]:
    seasonal = list(b._seasonal) if b._seasonal is not None else None
    return [b.hits, b.trials, b.windows, b.streak, b._disp, b._disp_weight, seasonal]


def _load_baseline(d: Detector, state: list[Any]) -> Baseline:
    hits, trials, windows, streak, disp, weight, seasonal = state
    b = Baseline(d._params)
    b.hits, b.trials, b.windows, b.streak = float(hits), float(trials), int(windows), int(streak)
    b._disp, b._disp_weight = float(disp), float(weight)
    if seasonal is not None and b._seasonal is not None and len(seasonal) == len(b._seasonal):
        b._seasonal = array("d", (float(v) for v in seasonal))
    return b


def _alert(a: Alert) -> list[Any]:
    expected = None if math.isnan(a.expected) else a.expected
    return [
        a.alert_id,
        a.kind,
        a.rule,
        list(a.series),
        _ms(a.window_start),
        _ms(a.window_end),
        a.window_version,
        a.windows,
        a.observed,
        a.volume,
        expected,
        a.p_value,
        a.severity,
        a.explanation,
        a.retracted,
    ]


def _load_alert(row: list[Any]) -> Alert:
    (
        aid,
        kind,
        rule,
        series,
        begin,
        end,
        version,
        windows,
        observed,
        volume,
        expected,
        p,
        severity,
        explanation,
        retracted,
    ) = row
    return Alert(
        alert_id=str(aid),
        kind=cast(AlertKind, kind),
        rule=cast(Rule, rule),
        series=Series(*series),
        window_start=_utc(begin),
        window_end=_utc(end),
        window_version=int(version),
        windows=int(windows),
        observed=int(observed),
        volume=int(volume),
        expected=math.nan if expected is None else float(expected),
        p_value=None if p is None else float(p),
        severity=cast(Severity, severity),
        explanation=str(explanation),
        retracted=bool(retracted),
    )


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)
