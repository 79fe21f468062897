"""One fault at a time while the whole pipeline runs on its input, each run compared with
the fault-free reference: every touchpoint once (count() = uniqExact(event_id) = sent, with
and without FINAL), and each event's person, the journey outcomes, the standing drop-offs and
the alerts equal. The time from the restart to processing again goes to the results table.

Short version (`make test`): a SIGKILL of the ingest worker mid-stream on about 4,000 events,
run beside its reference. Full version (`make chaos`): every scenario, CHAOS_RUNS times, on
>= 100,000 events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.broker import LocalBroker
from schemas.deadletter import DeadLetter, SinkDeadLetter
from schemas.settings import LocalBrokerSettings
from schemas.topics import Topics
from tests.integration.helpers import dead_letters, free_port, stage_topics

from .conftest import FULL, PORT, RATE, ROOT, RUNS, Reference, record, settings_for
from .feed import Input
from .pipeline import STAGES
from .results import differences
from .scenarios import (
    POISON,
    WRONG_VERSION,
    Run,
    broker_restart,
    clickhouse_outage,
    kill_sink_three_times,
    kill_worker,
    poison_inputs,
    rebalance,
    same_worker_id,
    scale_out,
)

full_only = pytest.mark.skipif(not FULL, reason="make chaos (CHAOS_FULL=1) runs this")
RUN_IDS = [pytest.param(n, id=f"run{n}") for n in range(1, RUNS + 1)]
OUTAGE = 60.0 if FULL else 15.0
AWAY = 15.0


def check(scenario: str, n: int, run: Run, resume: float | None, reference: Reference) -> None:
    """Record the run's row, then assert it: each event once, everything else as the
    reference has it."""
    got = run.found
    assert got is not None
    diff = differences(got, reference.get())
    record(scenario, run=n, sent=run.feed.sent, got=got, differences=diff, resume=resume)
    sent = run.feed.sent
    assert (got.rows, got.distinct, got.final, got.distinct_final) == (sent,) * 4
    assert diff == {}, diff


# -- the short version, also in make test (and part of the full one) ------------------------------


@pytest.mark.parametrize("n", RUN_IDS)
def test_sigkill_of_the_ingest_worker(
    n: int, tmp_path: Path, bootstrap: str, feed: Input, reference: Reference
) -> None:
    run = Run(settings_for(bootstrap, tmp_path), tmp_path, feed, RATE)
    resume = run.execute(kill_worker("ingest"))
    check("SIGKILL ingest", n, run, resume, reference)


@full_only
@pytest.mark.parametrize("n", RUN_IDS)
def test_sigkill_of_the_sink_three_times_in_a_row(
    n: int, tmp_path: Path, bootstrap: str, feed: Input, reference: Reference
) -> None:
    # A fifth of the rate: the feed outlasts three kills, restarts and resumes.
    run = Run(settings_for(bootstrap, tmp_path), tmp_path, feed, RATE / 5)
    resume = run.execute(kill_sink_three_times)
    check("SIGKILL sink x3", n, run, resume, reference)


# -- the full version ---------------------------------------------------------------------


@full_only
@pytest.mark.parametrize("stage", ["identity", "journeys", "friction"])
@pytest.mark.parametrize("n", RUN_IDS)
def test_sigkill_of_a_stage_worker(
    *, stage: str, n: int, tmp_path: Path, bootstrap: str, feed: Input, reference: Reference
) -> None:
    run = Run(settings_for(bootstrap, tmp_path), tmp_path, feed, RATE)
    resume = run.execute(kill_worker(stage))
    check(f"SIGKILL {stage}", n, run, resume, reference)


@full_only
@pytest.mark.parametrize("n", RUN_IDS)
def test_a_rebalance_back_and_forth(
    n: int, tmp_path: Path, bootstrap: str, feed: Input, reference: Reference
) -> None:
    workers = {"journeys": 2}
    run = Run(settings_for(bootstrap, tmp_path), tmp_path, feed, RATE, workers=workers)
    resume = run.execute(lambda r: rebalance(r, AWAY))
    check("rebalance (2 journeys workers, 1 killed, back 15 s later)", n, run, resume, reference)


@full_only
@pytest.mark.parametrize("n", RUN_IDS)
def test_two_workers_per_stage_and_two_sinks_joining_mid_stream(
    n: int, tmp_path: Path, bootstrap: str, feed: Input, reference: Reference
) -> None:
    """Scaled out mid-stream, the pipeline stores exactly what one worker of each stores:
    two sinks write through `db serve` (chDB opens a folder in one process)."""
    run = Run(
        settings_for(bootstrap, tmp_path),
        tmp_path,
        feed,
        RATE,
        workers=dict.fromkeys(STAGES, 2),
        sinks=2,
        serve_port=free_port(),  # never one of the suite's own ports
        joining=True,
    )
    resume = run.execute(scale_out)
    label = "two workers per stage and two sinks, the second of each joining mid-stream"
    check(f"{label} (a rebalance)", n, run, resume, reference)


@full_only
@pytest.mark.parametrize("n", RUN_IDS)
def test_clickhouse_unreachable(
    n: int, tmp_path: Path, bootstrap: str, feed: Input, reference: Reference
) -> None:
    port = PORT + 10  # db serve on the suite's own ports
    run = Run(settings_for(bootstrap, tmp_path), tmp_path, feed, RATE, serve_port=port)
    resume = run.execute(clickhouse_outage(OUTAGE))
    check(f"ClickHouse unreachable {OUTAGE:.0f} s", n, run, resume, reference)


@pytest.fixture
def own_broker() -> Iterator[LocalBroker]:
    """A broker this test may stop and start (ports 19532-19533), wiped before and after."""
    broker = LocalBroker(
        LocalBrokerSettings(instance="chaos-restart", port=PORT + 2, controller_port=PORT + 3),
        ROOT / ".local",
    )
    broker.stop()
    broker.wipe()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        broker.wipe()


@full_only
@pytest.mark.parametrize("n", RUN_IDS)
def test_broker_stop_and_restart(
    n: int, tmp_path: Path, own_broker: LocalBroker, feed: Input, reference: Reference
) -> None:
    run = Run(settings_for(own_broker.bootstrap, tmp_path), tmp_path, feed, RATE)
    fault = broker_restart(own_broker.stop, own_broker.start, AWAY)
    resume = run.execute(fault)
    check(f"broker stopped {AWAY:.0f} s", n, run, resume, reference)


@full_only
@pytest.mark.parametrize("n", RUN_IDS)
def test_poison_and_wrong_version_records_in_every_stages_input(
    n: int, tmp_path: Path, bootstrap: str, feed: Input, reference: Reference
) -> None:
    """Each stage keeps both records of each of its inputs in its dead-letter topic, raw and
    with a reason; the identity stage keeps the touchpoint whose event id is malformed
    instead of forwarding it (nothing reaches the sink's dead letters)."""
    run = Run(settings_for(bootstrap, tmp_path), tmp_path, feed, RATE)
    run.execute(poison_inputs)
    topics = Topics.from_settings(run.settings.topics)
    inputs = stage_topics(run.settings, *STAGES)
    for stage, topic in topics.stage_dead_letters().items():
        letters = [DeadLetter.model_validate(d) for d in dead_letters(run.settings, topic)]
        kept = Counter(d.raw_bytes() for d in letters if d.raw_bytes() in (POISON, WRONG_VERSION))
        assert kept == {POISON: len(inputs[stage]), WRONG_VERSION: len(inputs[stage])}, stage
        assert all(d.reason and d.stage == stage for d in letters), stage
    identity = dead_letters(run.settings, topics.dlq_identity)
    assert [d["reason"] for d in identity if d.get("event_id") == "not-a-uuid"] == ["invalid_field"]
    # The sink reads the stages' output topics too: the records put there reach its dead
    # letters as they are, and nothing else does (no real row was refused).
    refused = [
        SinkDeadLetter.model_validate(d) for d in dead_letters(run.settings, topics.dlq_sink)
    ]
    injected = {POISON, WRONG_VERSION}
    injected |= {b"[" + p + b"]" for p in injected}  # as the sink framed a message's rows
    assert refused and {r.rows_bytes() for r in refused} <= injected, refused
    # Last: the comparison with the reference.
    check("poison + wrong-version envelope", n, run, None, reference)


@full_only
@pytest.mark.parametrize("n", RUN_IDS)
def test_two_workers_with_one_worker_id(
    n: int, tmp_path: Path, bootstrap: str, feed: Input, reference: Reference
) -> None:
    run = Run(settings_for(bootstrap, tmp_path), tmp_path, feed, RATE)
    run.execute(same_worker_id)
    check("second ingest worker with the same worker id", n, run, None, reference)
