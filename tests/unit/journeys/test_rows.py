"""stream_processors.journeys.rows: the core's records as the rows of their topics."""

from __future__ import annotations

from typing import Any

import orjson

from stream_processors.journeys.core.outputs import DropOff, JourneyUpdate, StageTransition
from stream_processors.journeys.rows import Outputs
from tests.unit.journeys.test_core import Run


def rows(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    outputs = Outputs()
    outputs.add(records)
    names = {k: k for k in ("journeys", "transitions", "dropoffs", "retractions", "sessions")}
    return {k: [orjson.loads(r) for r in found] for k, found in outputs.by_topic(names)}


def test_a_retracted_drop_off_is_written_again_whole() -> None:
    run = Run()
    steps = ((0, "home_view"), (10, "product_view"), (20, "add_to_cart"), (30, "checkout_step"))
    run.send("p1", *(run.event(m, et) for m, et in steps))
    run.at(95)
    (drop,) = run.of(DropOff)
    run.send("p1", run.event(60, "pos_purchase", "store"))  # late: retracts the drop-off
    written = [r for r in rows(run.out)["dropoffs"] if r["dropoff_id"] == drop.dropoff_id]
    assert [(r["version"], r["retracted"], r["retraction_reason"]) for r in written] == [
        (drop.version, False, ""),
        (drop.version + 1, True, "late_event"),
    ]
    standing, retracted = written
    facts = {k: v for k, v in standing.items() if k not in ("version", "retracted")}
    facts.pop("retraction_reason")
    assert {k: retracted[k] for k in facts} == facts
    assert retracted["dropped_at"] == drop.deadline_ms / 1000 and retracted["last_channel"] == "web"


def test_a_step_writes_only_the_latest_version_of_each_journey() -> None:
    """Events released together advance a journey several times in one step: only its
    highest version becomes a row (the table keeps only that one), and each transition
    is still written."""
    run = Run()
    steps = ((1, "home_view"), (2, "product_view"), (3, "add_to_cart"), (4, "checkout_step"))
    run.send("p1", *(run.event(m, et) for m, et in steps))
    run.send("p2", run.event(2, "home_view"))
    step = run.at(10)  # releases all five events in one step
    versions = [(r.journey_id, r.version) for r in step if isinstance(r, JourneyUpdate)]
    assert len(versions) > len({j for j, _ in versions})  # the core did report several
    outputs = Outputs()
    outputs.add(step)
    written = rows(step)
    latest = {j: max(v for jj, v in versions if jj == j) for j, _ in versions}
    assert {(r["journey_id"], r["version"]) for r in written["journeys"]} == set(latest.items())
    assert len(written["journeys"]) == len(latest) == 2
    assert outputs.superseded == len(versions) - len(latest)
    assert len(written["transitions"]) == len([r for r in step if isinstance(r, StageTransition)])


def test_an_older_version_after_a_newer_one_does_not_replace_it() -> None:
    run = Run()
    run.send("p1", run.event(1, "home_view"), run.event(2, "product_view"))
    step = [r for r in run.at(10) if isinstance(r, JourneyUpdate)]
    assert len(step) == 2 and step[0].version < step[1].version
    written = rows(list(reversed(step)))
    assert [r["version"] for r in written["journeys"]] == [step[1].version]
