"""Stopping and resuming the reading of one partition of a stage's input, in the Kafka client
itself (aiokafka, inside faust's consumer thread).

Not faust's `pause_partitions`: faust drops whatever is left of a fetched batch for a partition
it paused, past the client's position, and reads none of it again, so a pause in the middle of
a batch lost events (and a seek back races the rest of that batch, which faust still delivers
once resumed). The client keeps its position: what it had fetched of a paused partition is
thrown away unread and fetched again on resume, and records faust already took are delivered
in order. A rebalance gives the client fresh partitions, all reading: callers that want a
partition paused say so again while it is (`JourneyStage._pace` does, on every batch read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)


class PartitionFlow:
    """`hold(topic, partition, paused)` from a handler: applied in the consumer thread soon
    after, in the order asked."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._tasks: set[asyncio.Task[None]] = set()  # kept until done: the loop holds weakly

    def hold(self, topic: str, partition: int, paused: bool) -> None:
        task = self.app.loop.create_task(self._apply(TopicPartition(topic, partition), paused))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply(self, tp: TopicPartition, paused: bool) -> None:
        thread = self.app.consumer._thread  # faust's consumer thread: the client lives there

        async def in_thread() -> None:
            client = thread._ensure_consumer()
            # No longer assigned here: a new assignment starts reading anyway.
            with contextlib.suppress(IllegalStateError):
                client.pause(tp) if paused else client.resume(tp)

        try:
            await thread.call_thread(in_thread)
        except Exception:  # the consumer stopping: nothing left to hold
            log.warning(
                "could not %s a partition",
                "pause" if paused else "resume",
                extra={"topic": tp.topic, "partition": tp.partition},
                exc_info=True,
            )
