"""`journeys alerts coverage`: every series the friction stage tests, its volume, and how soon
the detector would find a change in it (docs/concepts.md §6, "Evidence that accumulates").

A quiet series is never skipped: its CUSUM tests it over as many windows as its evidence
takes. This command says how many, per series, so nobody has to guess what a quiet
touchpoint is worth: for a friction signal or a drop-off share, a doubling of its rate; for
entries and events, a fall to `collapse_ratio` of normal (the change those series are tested
for). The figure is the CUSUM's expected run to an alarm, `h / KL` windows (Wald's
approximation; `sequential.windows_to_detect`), from the series' mean volume and rate over the
last `--hours` of windows ClickHouse holds (`friction_windows`, read through
`sinks.clickhouse.reading()` like every reader), taken as if it were its baseline.

`coverage_answer` is pure: windows in, rows out.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from deploy.commands import EPILOG, SubParsers
from deploy.query.answers import Answer
from deploy.query.formats import FORMATS, render
from schemas.friction import POSITIVE_SIGNALS
from schemas.settings import DetectorSettings, Settings
from stream_processors.friction.core.sequential import (
    binomial_kl,
    odds_shift,
    poisson_kl,
    windows_to_detect,
)
from stream_processors.friction.core.series import (
    DROPPED,
    ENTERED,
    EVENTS,
    EXPOSURES,
    FRICTION,
    PROGRESSED,
    SAW,
    STAGE,
    VOLUME,
)

COLUMNS = [
    "series",
    "windows",
    "volume_per_window",
    "rate",
    "tested_for",
    "per_window_test",
    "windows_to_detect",
    "minutes_to_detect",
]
# Positive moments are never friction: the detector does not test them.
_NOT_SIGNALS = frozenset({EXPOSURES}) | {s.value for s in POSITIVE_SIGNALS}
Window = tuple[str, str, Mapping[str, int]]  # (series kind, scope, counts)


@dataclass
class _Totals:
    hits: float = 0.0
    trials: float = 0.0
    windows: int = 0


def register_coverage(asub: SubParsers[argparse.ArgumentParser]) -> None:
    """The `coverage` action of `journeys alerts`."""
    coverage = asub.add_parser(
        "coverage",
        help="every tested series, its volume, and how soon a change in it would alert",
        description="List every series the friction stage tests (from ClickHouse's "
        "friction_windows over the last --hours of event time), with its mean volume per "
        "window, its rate, whether one window is enough for the per-window test, and how many "
        "windows (and minutes) its run-of-windows test takes on average to alert on a doubling "
        "of its rate (a fall to the collapse ratio, for entries and events).",
        epilog="Examples: `journeys alerts coverage`, `journeys alerts coverage --hours 6 "
        "--format json`. " + EPILOG,
    )
    coverage.add_argument(
        "--hours", type=float, default=24.0, help="the event-time span to read (default 24)"
    )
    coverage.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    coverage.set_defaults(func=_coverage)


def coverage_answer(
    windows: Iterable[Window], detector: DetectorSettings, window: timedelta
) -> Answer:
    """One row per tested series of the windows given (one closed window each). Pure."""
    held_windows = list(windows)
    # A signal is tested at its scope in every window once seen there, with zero hits where
    # it is absent (as the detector does): the names per scope first.
    names: dict[tuple[str, str], set[str]] = {}
    for kind, scope, counts in held_windows:
        if kind == FRICTION:
            names.setdefault((kind, scope), set()).update(counts)
    totals: dict[tuple[str, str, str], _Totals] = {}
    for kind, scope, counts in held_windows:
        known = names.get((kind, scope), set())
        for series, hits, trials in _tested(kind, scope, counts, known):
            held = totals.setdefault(series, _Totals())
            held.hits += hits
            held.trials += trials
            held.windows += 1
    minutes = window.total_seconds() / 60
    rows = []
    for series, t in sorted(totals.items()):
        rows.append(_row(series, t, detector, minutes))
    return Answer(COLUMNS, rows)


def _tested(
    kind: str, scope: str, counts: Mapping[str, int], names: Iterable[str]
) -> list[tuple[tuple[str, str, str], int, int]]:
    """The detector's series of one window (`Detector._tests`): (series, hits, trials)."""
    if kind == FRICTION:
        exposures = counts.get(EXPOSURES, 0)
        return [
            ((FRICTION, scope, n), counts.get(n, 0), exposures)
            for n in sorted(names)
            if n not in _NOT_SIGNALS and not n.startswith(SAW)
        ]
    if kind == STAGE:
        dropped = counts.get(DROPPED, 0)
        leaving = dropped + counts.get(PROGRESSED, 0)
        return [
            (("dropoff", scope, "dropoff"), dropped, leaving),
            (("entries", scope, ENTERED), counts.get(ENTERED, 0), 1),
        ]
    if kind == VOLUME:
        return [(("volume", scope, EVENTS), counts.get(EVENTS, 0), 1)]
    return []


def _row(
    series: tuple[str, str, str], t: _Totals, d: DetectorSettings, minutes: float
) -> tuple[Any, ...]:
    kind, scope, name = series
    n = t.trials / t.windows  # per window: exposures, journeys leaving, or 1 for a count
    if kind in (FRICTION, "dropoff"):
        rate = max(t.hits / t.trials, d.min_rate) if t.trials else d.min_rate
        if kind == FRICTION:
            drift = poisson_kl(rate * n, 2.0, d.cusum_rise)
            per_window = n >= d.min_exposures and rate * n * d.spike_ratio >= d.min_signals
        else:
            p0 = min(rate, 0.99)
            doubled = min(2.0 * p0, 0.99)
            drift = binomial_kl(n, p0, doubled, odds_shift(p0, d.cusum_odds))
            per_window = n >= d.min_exposures and doubled * n >= d.min_signals
        volume, shown_rate, tested = n, rate, "doubling"
    else:
        mean = t.hits / t.windows
        drift = poisson_kl(mean, d.collapse_ratio, d.collapse_ratio)
        per_window = mean >= d.min_expected
        volume, shown_rate = mean, None
        tested = f"fall to {d.collapse_ratio:.0%}"
    runs = windows_to_detect(d.cusum_h, drift) if d.cusum else None
    if runs is None or math.isinf(runs):
        wait, wait_minutes = None, None
    else:
        wait, wait_minutes = round(runs, 1), round(runs * minutes)
    return (
        f"{kind} {scope} {name}",
        t.windows,
        round(volume, 2),
        None if shown_rate is None else round(shown_rate, 4),
        tested,
        "yes" if per_window else "no",
        wait,
        wait_minutes,
    )


def read_windows(settings: Settings, hours: float) -> list[Window]:
    """The latest version of every friction window of the last `hours` of event time."""
    from sinks.clickhouse import reading

    with reading(settings.clickhouse_dsn) as client:
        result = client.query(
            "SELECT series_kind, scope, counts FROM friction_windows FINAL "
            "WHERE window_start > (SELECT max(window_start) FROM friction_windows) "
            "- toIntervalMillisecond({span:Int64}) AND NOT backfill",
            parameters={"span": int(hours * 3_600_000)},
        )
        return [(str(k), str(s), dict(c)) for k, s, c in result.result_rows]


def _coverage(settings: Settings, args: argparse.Namespace) -> int:
    if args.hours <= 0:
        print("journeys: error: --hours must be positive", file=sys.stderr)
        return 2
    windows = read_windows(settings, args.hours)
    if not windows:
        print("no friction windows in ClickHouse yet: run the friction stage and the sink")
        return 0
    f = settings.friction
    print(render(coverage_answer(windows, f.detector, f.window), args.format))
    return 0
