"""`make bench-detection`: how well the friction stage finds incidents, with no broker.

Simulated traffic (`detection_scenarios`) goes through the pipeline's cores in one process
(`detection_cores`: ingest, identity, journeys, then the friction stage's own handlers), and
the alerts the stage publishes are scored apart from the detector (`detection_scoring`).

Warm-up: every scenario first gets `Traffic.warmup_days` (8) days of incident-free history,
a Monday to the next Tuesday, run once through the cores as fast as they go; the pipeline's
state is then forked, one child process per scenario (two side by side), and each child
plays its scenario's scored period (midnight to 18:00; seven days for the incident-free run)
with its incident laid over it.

Printed: per scenario, whether an alert named the right series and kind, the delay in
event time from the incident's start to that alert, and the false alerts per 24 hours per
100 tested series (with the count); then the run time, and the friction stage's memory
per series with its windows kept for the allowed lateness (`friction.allowed_lateness`), late
channels' for the late tolerance (`journeys.late_tolerance`), and how many windows it holds.

`python -m tests.bench.detection [--customers N] [--warmup-days D] [--only TEXT] [--at-once N]`
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import Any, TypeVar

from .detection_cores import CorePipeline, Published, clock_ticks
from .detection_scenarios import (
    SCENARIOS,
    Delivery,
    Scenario,
    Simulated,
    Traffic,
    scored_deliveries,
    simulate,
)
from .detection_scoring import Outcome, VolumeTally, score

TICK = timedelta(minutes=1)
T = TypeVar("T")


@dataclass
class ScenarioResult:
    scenario: str
    incident: bool
    outcome: Outcome
    seconds: float
    alerts: int


def feed(pipeline: CorePipeline, deliveries: Iterable[Delivery]) -> None:
    """Deliveries through the cores, one tick of the simulated clock at a time."""
    for now, batch in clock_ticks(deliveries, TICK):
        pipeline.step(now, batch)


def play(pipeline: CorePipeline, sim: Simulated, scenario: Scenario) -> ScenarioResult:
    """One scenario's scored period on a warmed pipeline (a forked copy of it)."""
    started = time.perf_counter()
    scored_from = sim.traffic.scored_from
    tally = VolumeTally(scored_from, scored_from + timedelta(days=scenario.scored_days))
    pipeline.published = []
    pipeline.on_window = tally.add
    feed(pipeline, scored_deliveries(sim, scenario))
    outcome = score(scenario, scored_from, pipeline.published, tally)
    seconds = time.perf_counter() - started
    incident = scenario.incident is not None
    return ScenarioResult(scenario.name, incident, outcome, seconds, len(pipeline.published))


@dataclass
class Child:
    """A forked process running one function, and the pipe its result comes back on."""

    pid: int
    read: int

    def result(self) -> Any:
        with os.fdopen(self.read, "rb") as incoming:
            data = incoming.read()
        os.waitpid(self.pid, 0)
        ok, value = pickle.loads(data)
        if not ok:
            raise RuntimeError(f"scenario failed in its process: {value}")
        return value


def fork(run: Callable[[], Any]) -> Child:
    """`run()` in a forked child: it gets the parent's state as it is, and changes only its
    own copy; its result comes back pickled (`Child.result`)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        code = 0
        try:
            payload = pickle.dumps((True, run()))
        except BaseException as exc:  # reported by the parent
            payload, code = pickle.dumps((False, repr(exc))), 1
        with os.fdopen(write, "wb") as out:
            out.write(payload)
        os._exit(code)
    os.close(write)
    return Child(pid, read)


def in_child(run: Callable[[], T]) -> T:
    """`run()` in a forked child, waited for."""
    result: T = fork(run).result()
    return result


def play_all(
    pipeline: CorePipeline, sim: Simulated, scenarios: list[Scenario], at_once: int
) -> list[ScenarioResult]:
    """Every scenario in its own child, `at_once` at a time (the longest first), printing
    each line as it comes; the results in the scenarios' order."""
    order = sorted(range(len(scenarios)), key=lambda i: -scenarios[i].scored_days)
    running: list[tuple[int, Child]] = []
    done: dict[int, ScenarioResult] = {}
    for i in order:
        if len(running) >= at_once:
            first, child = running.pop(0)
            done[first] = _report(child.result())
        print(f"scenario: {scenarios[i].name} ...", flush=True)
        running.append((i, fork(partial(play, pipeline, sim, scenarios[i]))))
    for i, child in running:
        done[i] = _report(child.result())
    return [done[i] for i in range(len(scenarios))]


def _report(result: ScenarioResult) -> ScenarioResult:
    print(render([result]).splitlines()[-1], flush=True)
    return result


def warm(sim: Simulated, pipeline: CorePipeline) -> VolumeTally:
    """The warm-up history; returns its last day's series volumes (for memory per series)."""
    last_day = VolumeTally(sim.traffic.scored_from - timedelta(days=1), sim.traffic.scored_from)
    pipeline.on_window = last_day.add
    feed(pipeline, (d for d in sim.deliveries if d[0] < sim.traffic.scored_from))
    pipeline.on_window = None
    return last_day


_OPAQUE = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType)


def deep_size(roots: Iterable[Any], shared: Iterable[Any]) -> int:
    """Bytes held by everything reachable from `roots`, except `shared` objects, code and
    classes (what any stage of the kind holds whatever its series)."""
    seen = {id(o) for o in shared}
    stack = list(roots)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def friction_memory(pipeline: CorePipeline) -> int:
    """The friction stage's state in memory: both halves' objects and tables."""
    f, d = pipeline.friction, pipeline.detection
    shared = [pipeline.settings, pipeline.sender, pipeline.topics, f.mapping, f.matcher]
    shared += [d.router, d.config, f.settings, d.settings]
    return deep_size([f, d], shared)


def windows_held(pipeline: CorePipeline) -> tuple[int, int]:
    """The (key, window) pairs the stage holds, and those of late channels, both halves."""
    parts = [p.windows for p in pipeline.friction._parts.values()]
    merger = pipeline.detection.decision().merger
    held = sum(w.open_windows() for w in parts) + merger.open_windows()
    return held, sum(w.late_windows() for w in parts) + merger.late_windows()


def _fmt_delay(delay: timedelta | None) -> str:
    if delay is None:
        return "-"
    minutes = delay.total_seconds() / 60
    return f"{minutes:.0f} min"


def render(results: list[ScenarioResult]) -> str:
    head = ("scenario", "detected (series, kind)", "delay", "false /24h/100 series (tested)")
    rows = [head]
    for r in results:
        o = r.outcome
        found = o.found if r.incident else "(no incident)"
        false = (
            f"{o.false_per_day_per_100:.2f} "
            f"({len(o.false_alerts)} in {o.scored_hours:.0f} h; {o.tested_series})"
        )
        rows.append((r.scenario, found, _fmt_delay(o.delay), false))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def details(results: list[ScenarioResult]) -> str:
    """The alerts behind each line: the finding, the consequences and the false ones."""
    lines = []
    for r in results:
        o = r.outcome
        lines.append(f"{r.scenario}: {r.alerts} alert rows in {r.seconds:.0f} s")
        if o.detected is not None:
            lines.append(f"  found   {o.detected.at:%a %H:%M} {o.detected.explanation}")
        for f in o.symptoms:
            lines.append(f"  also    {f.at:%a %H:%M} {f.explanation}")
        for f in o.false_alerts:
            lines.append(f"  false   {f.at:%a %H:%M} {f.explanation}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.detection")
    parser.add_argument("--customers", type=int, default=Traffic.customers)
    parser.add_argument("--warmup-days", type=float, default=Traffic.warmup_days)
    parser.add_argument("--only", default="", help="run the scenarios whose name has TEXT")
    parser.add_argument("--at-once", type=int, default=2, help="scenarios run side by side")
    args = parser.parse_args(argv)
    logging.getLogger("stream_processors").setLevel(logging.ERROR)
    scenarios = [s for s in SCENARIOS if args.only in s.name]
    began = time.perf_counter()
    results: dict[str, ScenarioResult] = {}
    runs: list[str] = []
    memory_line = ""
    for kind in dict.fromkeys(s.progress_times for s in scenarios):
        group = [s for s in scenarios if s.progress_times == kind]
        scored_days = max(s.scored_days for s in group)
        traffic = Traffic(args.customers, args.warmup_days, scored_days, progress_times=kind)
        started = time.perf_counter()
        days = traffic.warmup_days + scored_days
        print(f"simulating {traffic.customers:,} customers over {days:g} days ({kind}) ...")
        sim = simulate(traffic)
        simulated = time.perf_counter() - started
        print(f"warm-up: {traffic.warmup_days:g} days of history through the cores ...", flush=True)
        pipeline = CorePipeline()
        last_day = warm(sim, pipeline)
        warmed = time.perf_counter() - started - simulated
        for result in play_all(pipeline, sim, group, args.at_once):
            results[result.scenario] = result
        played = time.perf_counter() - started - simulated - warmed
        warm_from = traffic.scored_from - timedelta(days=traffic.warmup_days)
        runs.append(
            f"warm-up ({kind} progress times): {traffic.warmup_days:g} days "
            f"({_day(warm_from)} to {_day(traffic.scored_from)}), {pipeline.events_in:,} "
            f"events; simulation {simulated:.0f} s, warm-up {warmed:.0f} s, scenarios "
            f"{played:.0f} s, {args.at_once} at a time"
        )
        if not memory_line:
            memory_line = _memory(pipeline, last_day.series())
    ordered = [results[s.name] for s in scenarios]
    total = time.perf_counter() - began
    print()
    print(render(ordered))
    print()
    print(details(ordered))
    print()
    print("\n".join(runs))
    print(f"run time {total:.0f} s")
    print(memory_line)
    return 0


def _memory(pipeline: CorePipeline, series: int) -> str:
    memory, held = friction_memory(pipeline), windows_held(pipeline)
    lateness = pipeline.settings.friction.allowed_lateness
    late = pipeline.detection.late_lateness
    return (
        f"friction stage memory: {memory / series:,.0f} bytes per series "
        f"({memory / 1e6:.1f} MB for {series} series, windows kept {lateness} past their end, "
        f"late channels' {late}: {held[1]:,} of the {held[0]:,} windows held)"
    )


def _day(at: datetime) -> str:
    return f"{at:%a %d %b %H:%M}"


__all__ = ["Published", "main"]

if __name__ == "__main__":
    sys.exit(main())
