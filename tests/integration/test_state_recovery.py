"""The foundation's state mechanism under SIGKILL: counts per key (which last-write-wins
cannot fake) must come out exactly right after a worker is killed mid-stream and restarted."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import orjson
import pytest

from producers.files import publisher
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.runtime.app import EXIT_FAULT_INJECTED
from stream_processors.runtime.state import restore

from .helpers import committed, committed_some, counts_stage, end_offsets, kill, stop, wait_for

EVENTS = 600_000
KEYS = 5_000


def _publish(settings: Settings) -> Counter[str]:
    # Small batches: many messages, so the worker is still busy when it is killed.
    pub = publisher(
        settings.model_copy(update={"batch": settings.batch.model_copy(update={"max_events": 50})})
    )
    truth: Counter[str] = Counter()
    for i in range(EVENTS):
        key = f"customer_id:c{(i * 7919) % KEYS}"
        pub.publish_fragment(key, orjson.dumps({"identity": {"customer_id": key[12:]}, "n": i}))
        truth[key] += 1
    pub.flush()
    return truth


@pytest.mark.parametrize("crash", ["sigkill", "exit_after_transaction"])
def test_counts_survive_a_crash_mid_stream(
    crash: str, settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    topics = Topics.from_settings(settings.topics)
    group = settings.topics.group("counts")
    truth = _publish(settings)
    ends = end_offsets(settings, topics.raw)
    log = tmp_path / "counts.log"

    faults = {"JOURNEYS_PROCESSOR__COMMIT_INTERVAL_SECONDS": "0.2"}
    if crash == "exit_after_transaction":
        # Dies after its state and outputs are durable but before faust commits the offsets,
        # so the restarted worker is handed inputs it already applied.
        faults["JOURNEYS_FAULTS__STAGE_EXIT_AFTER_TRANSACTIONS"] = "3"
    first = counts_stage(settings, log=log, **faults)
    processes.append(first)

    if crash == "sigkill":
        wait_for(
            lambda: committed_some(settings, group, topics.raw),
            120,
            "a first offset commit",
            [first],
            log,
        )
        kill(first)
    else:
        assert first.wait(timeout=120) == EXIT_FAULT_INJECTED, log.read_text()[-3000:]
    at_kill = committed(settings, group, topics.raw)
    assert sum(max(o, 0) for o in at_kill.values()) < sum(ends.values()), "killed too late"

    second = counts_stage(settings, log=log)
    processes.append(second)
    wait_for(lambda: committed(settings, group, topics.raw) == ends, 180, "catch-up", [second], log)
    stop([second], log)

    restored = restore(settings.kafka, topics.changelog("counts", "per_key"), range(4))
    counts: Counter[str] = Counter()
    for part in restored.values():
        counts.update(part.state.data)
    assert counts == truth
    assert {p: r.applied.offset for p, r in restored.items()} == {p: e - 1 for p, e in ends.items()}
