"""Stopping a partition's reading in the middle of a fetched batch, and resuming it, loses and
repeats nothing (`stream_processors/runtime/flow.py`, which the journeys stage uses to bound
how far a partition reads ahead of its time).

faust's own `pause_partitions` dropped the rest of a fetched batch of the partition it
paused, past the client's position, so offsets went missing: this test counts every offset
the stage was handed, from the real broker, and the offsets its group committed."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Producer

from schemas.settings import Settings
from schemas.topics import Topics
from tests.stages.paced import PAUSED

from .helpers import committed, end_offsets, python_module, stop, wait_for

PER_PARTITION = 20_000
VALUE = b"x" * 200


def _publish(settings: Settings, topic: str) -> None:
    # Small record batches, so a 64 KB fetch takes a few hundred messages, not all of them.
    producer = Producer(
        {**settings.kafka.as_librdkafka_dict(), "batch.size": 16_384, "linger.ms": 5}
    )
    for offset in range(PER_PARTITION):
        for partition in range(settings.topics.partitions):
            producer.produce(topic, VALUE, key=f"{partition}-{offset}", partition=partition)
            if offset % 1_000 == 0:
                producer.poll(0)
    assert producer.flush(60) == 0


def _read(record: Path) -> tuple[dict[int, list[int]], list[int]]:
    offsets: dict[int, list[int]] = defaultdict(list)
    resumes = []
    for line in record.read_text().splitlines():
        first, second = line.split()
        if first == "resume":
            resumes.append(int(second))
        else:
            offsets[int(first)].append(int(second))
    return offsets, resumes


def test_a_partition_paused_mid_batch_and_resumed_gets_every_offset_once_in_order(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    topic = Topics.from_settings(settings.topics).raw
    partitions = settings.topics.partitions
    _publish(settings, topic)
    ends = end_offsets(settings, topic)
    assert ends == dict.fromkeys(range(partitions), PER_PARTITION)

    record, log = tmp_path / "handed.txt", tmp_path / "paced.log"
    stage = python_module(
        settings,
        "tests.stages.paced",
        log=log,
        PACED_RECORD=str(record),
        PACED_OTHERS=str(PER_PARTITION * (partitions - 1)),
        JOURNEYS_PROCESSOR__COMMIT_INTERVAL_SECONDS="0.5",
    )
    processes.append(stage)
    group = settings.topics.group("paced")
    wait_for(lambda: committed(settings, group, topic) == ends, 180, "all read", [stage], log)
    stop([stage], log)

    offsets, resumes = _read(record)
    for partition in range(partitions):
        handed = offsets[partition]
        assert len(handed) == PER_PARTITION, (partition, len(handed), len(set(handed)))
        assert handed == list(range(PER_PARTITION)), partition
    # The pause held: of the paused partition only what was fetched before it came while the
    # others were read to their end, the rest after the resume.
    assert len(resumes) == 1
    assert 1 <= resumes[0] < PER_PARTITION // 4, resumes
    assert PAUSED in offsets
