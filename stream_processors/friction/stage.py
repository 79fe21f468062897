"""The friction and alerts stage: `stitched`, `journey-transitions` and `journey-dropoffs` ->
event-time windows of every series -> detector -> alerts, friction windows and webhooks
(docs/stages/friction.md, docs/concepts.md §6).

One faust app with four agents:
- `friction`, `friction-transitions`, `friction-dropoffs` (partitioned, all workers): each
  partition's series in its own windows (`friction_partitions`);
- `detect` on `friction-partials` (one partition: one worker of the group at a time): the
  windows of all partitions summed, tested and turned into alerts (`friction_detection`).
And a thread per worker that posts committed alerts to webhooks (`friction_webhooks`).
"""

from __future__ import annotations

import logging
from typing import Any

from schemas.alerting import load_alert_routing
from schemas.friction import load_configured_mapping
from schemas.settings import Settings
from schemas.topics import Topics
from stream_processors.friction import metrics as friction_metrics
from stream_processors.friction.alerts.core.routing import AlertRouter
from stream_processors.friction.alerts.delivery import AlertDeliverer
from stream_processors.friction.detection import DETECTOR, FrictionDetection
from stream_processors.friction.partitions import STAGE, FrictionPartitions
from stream_processors.privacy.forget import (
    SuppressionWatch,
    erased_person,
    forget_alert_examples,
    forgetting_friction,
)
from stream_processors.runtime.app import StageRuntime, stage_runtime

log = logging.getLogger(__name__)

DETECTOR_SLOT = "detector"  # the detector's state in the suppression watch (partitions: ints)


def build(settings: Settings) -> tuple[Any, StageRuntime]:
    """The faust app of the friction stage, ready for a worker."""
    topics = Topics.from_settings(settings.topics)
    mapping = load_configured_mapping(settings.friction)
    routing_file = settings.alerts.routing_file
    routing = load_alert_routing(routing_file) if routing_file is not None else None
    runtime, windows = stage_runtime(settings, STAGE, topics.stitched, "windows")
    transitions = runtime.add_table(settings, STAGE, "transitions", topics.journey_transitions)
    dropoffs = runtime.add_table(settings, STAGE, "dropoffs", topics.journey_dropoffs)
    detector_table = runtime.add_table(settings, STAGE, "detector", topics.friction_partials)
    app, sender = runtime.app, runtime.sender
    parts = FrictionPartitions(settings, topics, sender, windows, transitions, dropoffs, mapping)
    router = AlertRouter(routing) if routing is not None else None
    detection = FrictionDetection(settings, topics, sender, detector_table, router)
    if routing is not None:
        deliverer = AlertDeliverer(settings, routing).start()
        runtime.closers.append(deliverer.stop)

    # Erased persons leave the example journeys and contact memory each partition holds, and
    # the detector's alert context, before the next input changes them (stream_processors/
    # privacy); what was on its way to either is not kept.
    privacy = SuppressionWatch.start(settings)
    runtime.closers.append(privacy.stop)
    parts.erased = detection.erased = erased_person(privacy)
    agent = forgetting_friction(runtime.partition_agent, privacy, parts)
    agent(topics.stitched, "friction", (windows,), parts.handle_stitched)
    if settings.friction.stage_series:
        agent(
            topics.journey_transitions,
            "friction-transitions",
            (windows, transitions),
            parts.handle_transitions,
        )
        agent(
            topics.journey_dropoffs, "friction-dropoffs", (windows, dropoffs), parts.handle_dropoffs
        )

    @app.agent(app.topic(topics.friction_partials, value_type=bytes, key_type=bytes), name="detect")
    async def detect(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            await detector_table.ready(msg.partition)
            if msg.partition != DETECTOR or DETECTOR not in detector_table.partitions:
                continue
            if privacy.fresh(DETECTOR_SLOT, detector_table[DETECTOR]):
                forget_alert_examples(detection, privacy.list)
            detection.handle(msg.value, msg.offset)
            sender.poll()

    late = [0]

    def report_late() -> None:
        # Counted, never silent: an on-call person reading the log learns that windows
        # already past their allowed lateness refused some counts (a late merge re-folding
        # old journeys, a store batch beyond the limit) and how many.
        dropped = parts.late_dropped()
        if dropped > late[0]:
            friction_metrics.FRICTION_LATE_DROPPED.labels("partition").inc(dropped - late[0])
            log.warning(
                "friction: counts older than the allowed lateness were dropped",
                extra={
                    "dropped": dropped - late[0],
                    "dropped_total": dropped,
                    "allowed_lateness": str(settings.friction.allowed_lateness),
                },
            )
        late[0] = dropped

    @app.timer(interval=10.0)  # type: ignore[untyped-decorator]
    async def gauges() -> None:
        report_late()

    runtime.closers.append(report_late)

    log.info(
        "friction stage built",
        extra={"window": str(settings.friction.window), "routing": str(routing_file)},
    )
    return app, runtime
