"""A test-only stage that stops reading one partition in the middle of a fetched batch and
resumes it later, through the same `PartitionFlow` and agent wrapper the journeys stage
uses, and writes down every message it was handed.

`tests/integration/test_partition_flow.py` runs it with `python -m tests.stages.paced` on the
real broker and checks, from that record, that every offset of every partition came exactly
once and in order, and that the paused partition really stopped meanwhile. Settings as for
`journeys process`; `PACED_RECORD` names the file written, `PACED_OTHERS` how many messages
the other partitions hold together (the paused one resumes once they are all read).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.runtime.app import StageRuntime, stage_runtime
from stream_processors.runtime.flow import PartitionFlow
from tests.stages import run_test_stage

STAGE = "paced"
PAUSED = 0
# Small fetches, so that a pause lands while most of the partition is still unfetched.
FETCH_BYTES = 64 * 1024


class Pacer:
    """Pauses partition `PAUSED` on its first message, resumes it once `others` messages of
    the other partitions have been handled; records `partition offset` per message, and a
    `resume N` line saying how many of the paused partition's came before the resume."""

    def __init__(self, hold: Any, others: int, record: IO[str]) -> None:
        self.hold = hold
        self.others = others
        self.record = record
        self.seen_paused = 0
        self.seen_others = 0
        self.state = "reading"

    def handle(self, _value: bytes | None, partition: int, offset: int) -> None:
        self.record.write(f"{partition} {offset}\n")
        if partition == PAUSED:
            self.seen_paused += 1
            if self.state == "reading":
                self.state = "paused"
                self.hold(PAUSED, True)
        else:
            self.seen_others += 1
            if self.state == "paused" and self.seen_others >= self.others:
                self.state = "resumed"
                self.record.write(f"resume {self.seen_paused}\n")
                self.hold(PAUSED, False)
        self.record.flush()


def build(settings: Settings) -> tuple[Any, StageRuntime]:
    topics = Topics.from_settings(settings.topics)
    runtime, seen = stage_runtime(settings, STAGE, topics.raw, "seen", fetch_bytes=FETCH_BYTES)
    flow = PartitionFlow(runtime.app)
    record = Path(os.environ["PACED_RECORD"]).open("a")  # noqa: SIM115 (closed by the runtime)
    runtime.closers.append(record.close)
    pacer = Pacer(
        lambda partition, paused: flow.hold(topics.raw, partition, paused),
        int(os.environ["PACED_OTHERS"]),
        record,
    )
    runtime.partition_agent(topics.raw, STAGE, (seen,), pacer.handle)
    return runtime.app, runtime


if __name__ == "__main__":
    run_test_stage(STAGE, "seen", build)
