"""Creating Journeys' topics and telling people, in one line, when Kafka is unreachable."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.settings import Settings
from schemas.topics import Topics

# Answers of a coordinator that is loading or moving; the same request succeeds shortly.
_COORDINATOR_MOVING = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}

# stage -> its state tables; every changelog is partitioned like `raw` unless listed in
# SINGLE_PARTITION (the identity authority's table follows the one-partition links topic).
STATEFUL_STAGES = {
    "ingest": ("seen",),
    "identity": ("routed", "links"),
    "journeys": ("persons", "merges", "handoff"),
    "friction": ("windows", "transitions", "dropoffs", "detector"),
}
SINGLE_PARTITION = {("identity", "links"), ("friction", "detector")}


class KafkaUnreachableError(RuntimeError):
    """Kafka did not answer; the message names the setting to change."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(
    settings: Settings, stateful: Mapping[str, tuple[str, ...]] = STATEFUL_STAGES
) -> list[TopicSpec]:
    """Every topic the pipeline uses, with its partition count and configuration; `stateful`
    names the stages whose state changelogs to include."""
    topics = Topics.from_settings(settings.topics)
    n = settings.topics.partitions
    compact = {
        "cleanup.policy": "compact",
        "segment.ms": "600000",
        "min.cleanable.dirty.ratio": "0.2",
    }
    specs = [
        TopicSpec(topics.raw, n, {"compression.type": "producer"}),
        TopicSpec(topics.touchpoints, n, {"compression.type": "producer"}),
        TopicSpec(topics.dlq_ingest, n, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        # Input a later stage could not read: rare (only Journeys stages write those topics),
        # so one partition each.
        *(
            TopicSpec(name, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)})
            for name in (topics.dlq_identity, topics.dlq_journeys, topics.dlq_friction)
        ),
        TopicSpec(topics.stitched, n, {"compression.type": "producer"}),
        # One partition each: the identity authority is one ordered log (ARCHITECTURE.md).
        TopicSpec(topics.identity_links, 1, {"compression.type": "producer"}),
        TopicSpec(topics.identity_map, 1, compact),
        TopicSpec(topics.identity_audit, 1, {"compression.type": "producer"}),
        TopicSpec(topics.identity_merges, n, {"compression.type": "producer"}),
        *(
            TopicSpec(name, n, {"compression.type": "producer"})
            for name in (
                topics.journey_updates,
                topics.journey_transitions,
                topics.journey_dropoffs,
                topics.journey_retractions,
                topics.journey_sessions,
                topics.journey_handoff,
            )
        ),
        # One partition each: the friction detector sums every partition's windows in one
        # place, and alerts are few (docs/stages/friction.md).
        TopicSpec(topics.friction_partials, 1, {"compression.type": "producer"}),
        TopicSpec(topics.friction_windows, 1, {"compression.type": "producer"}),
        TopicSpec(topics.alerts, 1, {"compression.type": "producer"}),
        TopicSpec(topics.dlq_alerts, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        TopicSpec(topics.alert_silences, 1, compact),  # every silence, kept by its id
        # One partition: few records, replayed in the order they were refused.
        TopicSpec(
            topics.dlq_sink,
            1,
            {"retention.ms": str(30 * 24 * 3600 * 1000), "max.message.bytes": str(8 << 20)},
        ),
        # Erased stays erased: kept for ever (compacted by hash), like the audit records.
        TopicSpec(topics.privacy_suppressions, 1, compact),
        TopicSpec(topics.privacy_audit, 1, {"retention.ms": "-1"}),
        TopicSpec(topics.identity_key_aliases, 1, compact),
    ]
    if settings.topics.retention_hours is not None:  # bounds what an erasure leaves behind
        kept = {"retention.ms": str(settings.topics.retention_hours * 3600 * 1000)}
        specs = [
            s
            if "retention.ms" in s.config or s.config.get("cleanup.policy") == "compact"
            else TopicSpec(s.name, s.partitions, {**s.config, **kept})
            for s in specs
        ]
    for stage, tables in stateful.items():
        for t in tables:
            count = 1 if (stage, t) in SINGLE_PARTITION else n
            specs.append(TopicSpec(topics.changelog(stage, t), count, compact))
    return specs


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient({**settings.kafka.as_librdkafka_dict(), "log_level": "3"})


def check_kafka(settings: Settings, timeout: float = 5.0) -> None:
    """Raise `KafkaUnreachableError` with a one-line message if no broker answers."""
    try:
        admin_client(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnreachableError(
            f"Kafka is not reachable at {settings.kafka.bootstrap_servers} ({exc.args[0]}); "
            "start it with `make broker-start` or set JOURNEYS_KAFKA__BOOTSTRAP_SERVERS"
        ) from None


def ensure_topics(
    settings: Settings,
    timeout: float = 30.0,
    stateful: Mapping[str, tuple[str, ...]] = STATEFUL_STAGES,
) -> list[str]:
    """Create the topics that are missing; return the names created. Idempotent."""
    check_kafka(settings)
    admin = admin_client(settings)
    existing = admin.list_topics(timeout=timeout).topics
    rf = settings.topics.replication_factor
    missing = [s for s in topic_specs(settings, stateful) if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, rf, config=s.config) for s in missing],
        operation_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


def committed_offsets(
    settings: Settings, group: str, topic: str, attempts: int = 20
) -> dict[int, int]:
    """Committed offsets of `group` on every partition of `topic` (-1001 where none).

    Retries while the group coordinator is still loading or moving, which a fresh broker
    answers with retriable errors such as NOT_COORDINATOR.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**settings.kafka.as_librdkafka_dict(), "group.id": group, "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10.0).topics[topic]
        tps = [TopicPartition(topic, p) for p in meta.partitions]
        for attempt in range(attempts):
            try:
                return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10.0)}
            except KafkaException as exc:
                error = exc.args[0]
                transient = error.retriable() or error.code() in _COORDINATOR_MOVING
                if not transient or attempt == attempts - 1:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")
    finally:
        consumer.close()


def group_lag(settings: Settings, group: str, topic: str) -> int:
    """Messages of `topic` that consumer group `group` has not committed yet."""
    from confluent_kafka import Consumer, TopicPartition

    committed = committed_offsets(settings, group, topic)
    consumer = Consumer({**settings.kafka.as_librdkafka_dict(), "group.id": group})
    try:
        lag = 0
        for partition, done in committed.items():
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10.0
            )
            lag += high - max(done, 0)
        return lag
    finally:
        consumer.close()


def group_drained(settings: Settings, group: str, topics: list[str], timeout: float = 30.0) -> bool:
    """Has consumer group `group` committed past every committed record of `topics`?

    Exact also on topics written in transactions, where commit markers sit after the last
    record and no consumer commits past them (so offset lag never reaches 0): it reads, with
    `read_committed`, from each committed offset and answers False at the first record found.
    """
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    reader = Consumer(
        {
            **settings.kafka.as_librdkafka_dict(),
            "group.id": f"journeys-drained-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        assignment = []
        for topic in topics:
            for partition, done in committed_offsets(settings, group, topic).items():
                start = done if done >= 0 else OFFSET_BEGINNING
                assignment.append(TopicPartition(topic, partition, start))
        pending = {(tp.topic, tp.partition) for tp in assignment}
        reader.assign(assignment)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in reader.consume(100, 0.5):
                err = msg.error()
                if err is None:
                    return False
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard((msg.topic(), msg.partition()))
        return not pending
    finally:
        reader.close()
