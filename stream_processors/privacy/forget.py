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
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from schemas.privacy import PERSON_PREFIX, SuppressionList
from schemas.settings import Settings
from stream_processors.privacy.gate import SuppressionReplica
from stream_processors.runtime.state import PartitionState

if TYPE_CHECKING:
    from stream_processors.friction.alerts.core.records import Example
    from stream_processors.friction.detection import FrictionDetection
    from stream_processors.friction.partitions import FrictionPartitions
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


def erased_person(watch: SuppressionWatch) -> Callable[[str], bool]:
    """Whether a person id is on the list as it is now."""

    def erased(person_id: str) -> bool:
        return watch.list.holds([f"{PERSON_PREFIX}{person_id}"])

    return erased


def forget_examples(
    held: dict[int, dict[str, list[Example]]],
    changed: set[int],
    suppressed: SuppressionList,
    where: str,
) -> int:
    """Drop from `held` (window start -> example scope -> example journeys: a friction
    partition's `examples`, the detector's `AlertContext.examples`) every example whose person
    is erased; the window starts it changed join `changed` (the owner's `touched`), so the
    stage writes them again in its next transaction; how many went. Pure."""
    persons = {e.person_id for scopes in held.values() for ex in scopes.values() for e in ex}
    gone = {pid for pid in persons if suppressed.holds([f"{PERSON_PREFIX}{pid}"])}
    if not gone:
        return 0
    removed = 0
    for start, scopes in list(held.items()):
        for scope, examples in list(scopes.items()):
            kept = [e for e in examples if e.person_id not in gone]
            if len(kept) == len(examples):
                continue
            removed += len(examples) - len(kept)
            changed.add(start)
            if kept:
                scopes[scope] = kept
            else:
                del scopes[scope]
        if not scopes:
            del held[start]
    log.info("privacy: %d examples of erased persons removed from %s", removed, where)
    return removed


def forget_friction(parts: FrictionPartitions, partition: int, suppressed: SuppressionList) -> int:
    """Drop the erased persons of one partition of the friction stage: the example journeys
    its open windows hold and its memory of their recent contacts (repeat contacts); the
    stage writes the windows that changed again and tombstones the contacts. How many
    examples and persons' contacts went."""
    part = parts.part(partition)
    gone = forget_examples(part.examples, part.windows.touched, suppressed, "friction windows")
    repeats = part.repeats
    if repeats is not None:
        erased = [p for p in repeats.persons() if suppressed.holds([f"{PERSON_PREFIX}{p}"])]
        for pid in erased:
            repeats.forget(pid)
        if erased:
            log.info("privacy: %d erased persons' contacts dropped from friction", len(erased))
        gone += len(erased)
    return gone


def forget_alert_examples(detection: FrictionDetection, suppressed: SuppressionList) -> int:
    """Drop the erased persons' examples from the friction detector: those its alert context
    keeps for the next alert versions, and those of each alert's last published version (its
    state, which the next version is compared with); the stage writes both again. How many
    went."""
    d = detection.decision()
    context = d.context
    gone = forget_examples(context.examples, context.touched, suppressed, "alert context")
    for group in d.groups.groups():
        record = group.published
        if record is None or not record.examples:
            continue
        kept = tuple(
            e for e in record.examples if not suppressed.holds([f"{PERSON_PREFIX}{e.person_id}"])
        )
        if len(kept) != len(record.examples):
            gone += len(record.examples) - len(kept)
            group.published = replace(record, examples=kept)
            d.republished = True
    if d.republished:
        log.info("privacy: examples of erased persons removed from published alerts' state")
    return gone


def forgetting_friction(
    agent: Callable[..., Any], watch: SuppressionWatch, parts: FrictionPartitions
) -> Callable[..., Any]:
    """The runtime's `partition_agent`, with each handler first dropping erased persons from
    the friction partition it is about to change (the three inputs share a partition's state)."""

    def register(topic: str, name: str, tables: Any, handler: Handler) -> Any:
        def handle(payload: bytes | None, partition: int, offset: int) -> None:
            if watch.fresh(partition, parts.windows[partition]):
                forget_friction(parts, partition, watch.list)
            handler(payload, partition, offset)

        return agent(topic, name, tables, handle)

    return register
