"""Reading every watched group's committed offsets and its input's committed end, with the
admin client (nothing joins the groups, so watching never triggers a rebalance)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from deploy.watch.stalls import Position

TIMEOUT = 10.0
# confluent-kafka's OffsetSpec.latest has no annotations: typed once, here.
_latest: Callable[[], Any] = OffsetSpec.latest


def read_positions(admin: AdminClient, groups: Sequence[str]) -> list[Position]:
    """Every partition each group has committed on, with its end (read_committed)."""
    committed: dict[tuple[str, str, int], int] = {}
    for group in groups:  # the call takes one group at a time
        futures = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT
        )
        for tp in futures[group].result(timeout=TIMEOUT).topic_partitions or []:
            committed[(group, tp.topic, tp.partition)] = tp.offset
    wanted = {TopicPartition(topic, partition) for _, topic, partition in committed}
    if not wanted:
        return []
    ends: dict[tuple[str, int], int] = {}
    latest = _latest()
    ends_asked = admin.list_offsets(
        dict.fromkeys(wanted, latest),
        isolation_level=IsolationLevel.READ_COMMITTED,
        request_timeout=TIMEOUT,
    )
    for asked, future in ends_asked.items():
        ends[(asked.topic, asked.partition)] = int(future.result(timeout=TIMEOUT).offset)
    return [
        Position(group, topic, partition, offset, ends[(topic, partition)])
        for (group, topic, partition), offset in sorted(committed.items())
    ]
