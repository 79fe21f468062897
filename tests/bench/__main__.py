"""`make bench`: the foundation's benchmarks on this machine, against a local broker.

Figures are targets for a 2-core machine, reported beside a baseline from the same run and
never asserted. Results are also written to .local/bench/results.json.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from schemas.topics import Topics

from . import (
    analyst_queries,
    collector,
    core,
    end_to_end,
    friction,
    friction_stage,
    identity,
    journeys,
    live_sink,
    pipeline,
    producer,
)
from .report import Result, render, save

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    results: list[Result] = []
    print("core: ingest validation and dedup, no broker ...", flush=True)
    results += core.bench_ingest_core()
    print("core: identity stitching, no broker ...", flush=True)
    results += identity.bench_identity_core()
    print("core: journeys with 1,000,000 open, no broker ...", flush=True)
    results += journeys.bench_journey_core()
    print("core: friction signals, windows and detector, no broker ...", flush=True)
    results += friction.bench_friction_core()
    results += friction.bench_false_alerts()

    with tempfile.TemporaryDirectory(prefix="journeys-bench-") as tmp:
        work = Path(tmp)
        print("broker: publishing 500,000 events to raw ...", flush=True)
        settings = pipeline.bench_settings(work)
        topics = Topics.from_settings(settings.topics)
        fragments = pipeline.valid_fragments(500_000, keys=50_000)
        messages = pipeline.publish(settings, topics.raw, fragments)
        raw = pipeline.raw_consume(settings, topics.raw, messages)
        results.append(raw)

        print("faust: ingest stage (decode, validate, dedup, forward) ...", flush=True)
        ingest = pipeline.stage_rate(
            settings,
            "ingest",
            topics.raw,
            work / "ingest.log",
            "faust ingest stage: validate + dedup + forward",
        )
        ingest.baseline, ingest.target = raw.value, ">= 80,000 events/s"
        results.append(ingest)

        results += person_stages(work)

        print("faust: counts stage (one state write per event), 1,000,000 keys ...", flush=True)
        state = pipeline.bench_settings(work)
        state_topics = Topics.from_settings(state.topics)
        big = pipeline.valid_fragments(1_000_000, keys=1_000_000)
        pipeline.publish(state, state_topics.raw, big)
        counts = pipeline.stage_rate(
            state,
            "counts",
            state_topics.raw,
            work / "counts.log",
            "faust counts stage: 1 state write per event",
        )
        counts.baseline, counts.target = raw.value, ">= 100,000 events/s"
        results.append(counts)

        print("faust: restart of the counts stage on 1,000,000 keys ...", flush=True)
        restart = pipeline.restart_with_state(state, state_topics.raw, work / "restart.log")
        restart.target = "<= 30 s"
        results.append(restart)

        print("producers: publisher vs raw produce() ...", flush=True)
        producers = producer.bench_producers(pipeline.bench_settings(work), fragments)
        results += producers

        print("collector: /v1/batch through HTTP with 1 and 2 workers, acked ...", flush=True)
        results += collector.bench_collector(
            pipeline.bench_settings(work), work / "collector.log", raw=producers[0].value
        )

        print("sink: 500,000 rows into chDB ...", flush=True)
        sink = pipeline.sink_rate(pipeline.bench_settings(work), fragments)
        sink[1].target = ">= 150,000 rows/s"
        results += sink
        results += analyst_benches(work)
        results += whole_pipeline(work)

    print()
    print(render(results))
    save(results, ROOT / ".local" / "bench" / "results.json")
    return 0


def person_stages(work: Path) -> list[Result]:
    """The stages behind ingest: identity, journeys, friction (each on its own topics)."""
    results: list[Result] = []
    print("faust: identity stage on 500,000 touchpoints ...", flush=True)
    results += identity.bench_identity_stage(pipeline.bench_settings(work), work / "identity.log")

    print("faust: journeys stage on 400,000 stitched events ...", flush=True)
    results += journeys.bench_journeys_stage(pipeline.bench_settings(work), work / "journeys.log")

    print("faust: friction stage on ~290,000 stitched events; alert delay ...", flush=True)
    results += friction_stage.bench_friction_stage(
        pipeline.bench_settings(work), work / "friction.log"
    )
    results += friction_stage.bench_alert_delay(pipeline.bench_settings(work), work / "delay.log")
    return results


def whole_pipeline(work: Path) -> list[Result]:
    """Every stage and the sink as processes at once, beside the bound of each alone."""
    print("end to end: every stage and the sink as processes, fed a file ...", flush=True)
    return end_to_end.bench_end_to_end(work)


def analyst_benches(work: Path) -> list[Result]:
    """Analysts reading live while the sink inserts, and their questions at scale (chDB only)."""
    print("sink: 1,000,000 rows each, alone and with four analysts querying ...", flush=True)
    results = live_sink.bench_sink_with_readers(work)
    print("analyst: funnel, drop-offs and paths over 13M touchpoints, 2M journeys ...", flush=True)
    results += analyst_queries.bench_analyst_queries()
    return results


if __name__ == "__main__":
    sys.exit(main())
