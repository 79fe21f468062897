"""The reference stateful stage: counts events per partition key on `raw`.

It exists to prove and measure the foundation's state mechanism with state that
last-write-wins cannot fake (a count): a crash that applied an input twice, or lost one,
shows up as a wrong count. Tests and benches run it with `python -m tests.stages.counts`,
which reads the same settings as `journeys process`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas import envelope
from schemas.settings import Settings
from schemas.topics import Topics
from schemas.touchpoint import IDENTIFIER_FIELDS
from stream_processors.runtime.app import StageRuntime, stage_runtime
from stream_processors.runtime.state import PartitionState
from tests.stages import run_test_stage

STAGE = "counts"


def key_of(event: Any) -> str:
    """The partition key an event was published under (its most stable identifier)."""
    identity = event.get("identity") if isinstance(event, dict) else None
    if isinstance(identity, dict):
        for name in IDENTIFIER_FIELDS:
            value = identity.get(name)
            if value:
                return f"{name}:{value}"
    return "(none)"


def count_message(state: PartitionState, payload: bytes | None) -> int:
    """Add one message's events to the counts; returns how many were counted."""
    try:
        events = envelope.decode(payload or b"").events
    except envelope.EnvelopeError:
        return 0
    for event in events:
        key = key_of(event)
        state[key] = state.data.get(key, 0) + 1
    return len(events)


def build(settings: Settings) -> tuple[Any, StageRuntime]:
    topics = Topics.from_settings(settings.topics)
    runtime, counts = stage_runtime(settings, STAGE, topics.raw, "per_key")
    app, sender = runtime.app, runtime.sender

    @app.agent(app.topic(topics.raw, value_type=bytes, key_type=bytes), name=STAGE)
    async def count(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            p = msg.partition
            await counts.ready(p)
            if p not in counts.partitions or msg.offset <= counts.applied_offset(p):
                continue
            count_message(counts[p], msg.value)
            counts.mark_applied(p, msg.offset, int(datetime.now(UTC).timestamp() * 1000))
            sender.poll()

    return app, runtime


if __name__ == "__main__":
    run_test_stage(STAGE, "per_key", build)
