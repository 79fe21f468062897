"""Erased persons leave the stages' state: each stage applies the suppression list to the state
it owns, in its own loop and its own transaction, so the removal is written to its changelog
(tombstones) with the input that brought it about.

No clear value travels for this: the stages follow the same `privacy-suppressions` topic as
the ingest gate and test what they hold (person ids, identifier keys) against its hashes. A
partition is checked again whenever the list grew or its state was restored since it was last
checked; erasures are rare, and a check is one keyed hash per held key and key id in use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from schemas.privacy import PERSON_PREFIX, SuppressionList
from schemas.settings import Settings
from stream_processors.privacy.gate import SuppressionReplica
from stream_processors.runtime.state import PartitionState

if TYPE_CHECKING:
    from stream_processors.journeys.stage import JourneyStage

log = logging.getLogger(__name__)

Handler = Callable[[bytes | None, int, int], None]


class Follower(Protocol):
    """What follows the suppression list: `SuppressionReplica`, or a fake in tests."""

    @property
    def list(self) -> SuppressionList: ...

    def stop(self) -> None: ...


class SuppressionWatch:
    """The suppression list, and for each piece of state the list's size when last checked."""

    def __init__(self, replica: Follower) -> None:
        self.replica = replica
        self._checked: dict[Any, tuple[object, int]] = {}

    @classmethod
    def start(cls, settings: Settings) -> SuppressionWatch:
        return cls(SuppressionReplica(settings).start())

    def stop(self) -> None:
        self.replica.stop()

    @property
    def list(self) -> SuppressionList:
        return self.replica.list

    def fresh(self, slot: Any, state: object) -> bool:
        """Whether `state`, the state now in `slot` (a restore puts a new object there), has
        not been checked against the list as it is now; it counts as checked from here on."""
        size = len(self.replica.list)
        checked = self._checked.get(slot)
        if not size or (checked is not None and checked[0] is state and checked[1] == size):
            return False
        self._checked[slot] = (state, size)
        return True


def forget_links(state: PartitionState, suppressed: SuppressionList, keep: str) -> int:
    """Delete the identity authority's links that touch an erased identifier (keys are
    `<u>\\x1f<v>`; `keep` is its bookkeeping key); how many went. Pure."""
    gone = [k for k in state if k != keep and suppressed.holds(k.split("\x1f"))]
    for key in gone:
        del state[key]
    if gone:
        log.info("privacy: %d identity links of erased persons removed", len(gone))
    return len(gone)


def forget_persons(stage: JourneyStage, partition: int, suppressed: SuppressionList) -> int:
    """Drop the erased persons of one partition of the journeys stage: their open journeys,
    sessions and buffered events, their aliases, and the handoffs that name them; the stage
    persists the removal as tombstones."""
    part = stage.part(partition)
    core, handoffs = part.core, part.handoffs
    held = set(core.held_persons()) | handoffs.names()
    gone = {pid for pid in held if suppressed.holds([f"{PERSON_PREFIX}{pid}"])}
    for pid in gone:
        core.erase_person(pid)
    handoffs.forget(gone)
    if gone:
        log.info("privacy: %d erased persons dropped from journeys state", len(gone))
    return len(gone)


def forgetting_journeys(
    agent: Callable[..., Any], watch: SuppressionWatch, stage: JourneyStage
) -> Callable[..., Any]:
    """The runtime's `partition_agent`, with each handler first dropping erased persons from
    the partition it is about to change."""

    def register(topic: str, name: str, tables: Any, handler: Handler) -> Any:
        def handle(payload: bytes | None, partition: int, offset: int) -> None:
            if watch.fresh(partition, stage.persons[partition]):
                forget_persons(stage, partition, watch.list)
            handler(payload, partition, offset)

        return agent(topic, name, tables, handle)

    return register
