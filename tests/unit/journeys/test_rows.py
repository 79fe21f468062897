"""stream_processors.journeys.rows: the core's records as the rows of their topics."""

from __future__ import annotations

from typing import Any

import orjson

from stream_processors.journeys.core.outputs import DropOff
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
