"""Erased persons leave the friction stage's state: the example journeys and contact memory of
a partition's open windows, and the detector's alert context and published alerts; written to
the changelogs in the next transaction, so a restore does not bring them back."""

from __future__ import annotations

from typing import Any

import orjson

from producers.pii import hash_with
from schemas import envelope
from schemas.topics import Topics
from stream_processors.friction.alerts.core.context import FRICTION_EXAMPLE, example_scope
from stream_processors.friction.alerts.core.records import Example
from stream_processors.friction.detection import FrictionDetection
from stream_processors.friction.partitions import FrictionPartitions
from stream_processors.privacy.forget import (
    Handler,
    SuppressionWatch,
    erased_person,
    forget_alert_examples,
    forget_examples,
    forgetting_friction,
)
from tests.unit.friction.test_stage import (
    T0,
    RecordingSender,
    S,
    alerts,
    detection,
    iso,
    journeys_time,
    partials,
    settings,
    stage,
    stitched,
    touch,
)
from tests.unit.privacy.test_forget import PII, suppressed

SCOPE = example_scope(FRICTION_EXAMPLE, "web:/checkout")


class Follower:
    """A suppression list that grows when told (the `privacy-suppressions` follower)."""

    def __init__(self) -> None:
        self.list = suppressed()
        self.stopped = False

    def erase(self, person: str) -> None:
        self.list.add(hash_with(PII, PII.active_key_id, f"person:{person}"))

    def stop(self) -> None:
        self.stopped = True


def call(at: int, person: str) -> bytes:
    """A call-center contact: remembered per person for the repeat-contact rule."""
    return orjson.dumps(
        {
            "event_id": f"c{at}{person}",
            "channel": "call_center",
            "source": "contact-center",
            "event_type": "contact_ended",
            "occurred_at": iso(at),
            "touchpoint": "billing",
            "identity": {"customer_id": person},
            "person_id": person,
            "properties": {},
        }
    )


def hooked(parts: FrictionPartitions, watch: SuppressionWatch) -> dict[str, Handler]:
    """The stage's handlers as the runtime would call them, through the privacy hook."""
    handlers: dict[str, Handler] = {}

    def agent(topic: str, name: str, tables: Any, handler: Handler) -> None:
        handlers[name] = handler

    register = forgetting_friction(agent, watch, parts)
    register("stitched", "friction", (), parts.handle_stitched)
    register("journey-dropoffs", "friction-dropoffs", (), parts.handle_dropoffs)
    return handlers


def persons_in(part_examples: dict[int, dict[str, list[Example]]]) -> set[str]:
    return {e.person_id for scopes in part_examples.values() for ex in scopes.values() for e in ex}


def latest_rows(records: list[Any], topic: str) -> dict[str, Any]:
    """What a changelog topic says per key at the end (None: a tombstone)."""
    held: dict[str, Any] = {}
    for t, value, key, _partition in records:
        if t == topic and key is not None:
            held[key.decode()] = None if value is None else orjson.loads(value)[1]
    return held


def test_an_erased_persons_examples_and_contacts_leave_a_friction_partition() -> None:
    s = settings()
    topics = Topics.from_settings(s.topics)
    sender, follower = RecordingSender(), Follower()
    parts = stage(sender, s)
    handle = hooked(parts, SuppressionWatch(follower))["friction"]
    first = [touch(T0 + 1_000, "gone", error="http_500"), touch(T0 + 2_000, "kept", error="x")]
    first += [call(T0 + 3_000, "gone"), call(T0 + 4_000, "kept")]
    first += [touch(T0 + 5_000, "other", error="http_500")]
    handle(stitched(first, T0 + 1_000, 0), 0, 0)
    sender.commit()
    part = parts.part(0)
    assert persons_in(part.examples) == {"gone", "kept", "other"}
    assert part.repeats is not None and set(part.repeats.persons()) == {"gone", "kept"}

    follower.erase("gone")
    # An input that changes no window: only the removal rewrites the window's row.
    handle(stitched([], T0 + 1_000, 1), 0, 1)
    assert persons_in(part.examples) == {"kept", "other"}
    assert set(part.repeats.persons()) == {"kept"}
    sender.commit()  # the transaction of the input that found the erasure

    changelog = latest_rows(sender.records, parts.windows.topic)
    assert changelog["rgone"] is None and changelog["rkept"] is not None
    written = [e["person_id"] for ex in changelog[f"w{T0}"]["x"].values() for e in ex]
    assert sorted(written) == ["kept", "other"]

    restored = stage(RecordingSender(), s, sender.records).part(0)
    assert persons_in(restored.examples) == {"kept", "other"}
    assert restored.repeats is not None and set(restored.repeats.persons()) == {"kept"}

    # What the partition sends the detector when the window closes: none of theirs.
    handle(stitched([], T0 + S + 10, 0), 0, 2)
    handle(stitched([], T0 + S + 10, 1), 0, 3)
    journeys_time(parts, 0, T0 + S + 10, 0)
    sent = [e["person_id"] for r in partials(sender, topics) if "x" in r for e in r["e"]]
    assert sorted(sent) == ["kept", "other"]


def test_input_on_its_way_before_the_erasure_keeps_no_example_of_theirs() -> None:
    s = settings()
    follower = Follower()
    parts = stage(RecordingSender(), s)
    watch = SuppressionWatch(follower)
    parts.erased = erased_person(watch)
    handle = hooked(parts, watch)["friction"]
    follower.erase("gone")
    late = [touch(T0 + 1_000, "gone", error="http_500"), touch(T0 + 2_000, "kept", error="x")]
    handle(stitched(late, T0 + 1_000, 0), 0, 0)
    assert persons_in(parts.part(0).examples) == {"kept"}


def test_nothing_changes_while_the_list_is_empty() -> None:
    s = settings()
    sender, follower = RecordingSender(), Follower()
    parts = stage(sender, s)
    handle = hooked(parts, SuppressionWatch(follower))["friction"]
    events = [touch(T0 + 1_000, "p1", error="http_500"), call(T0 + 2_000, "p1")]
    handle(stitched(events, T0 + 1_000, 0), 0, 0)
    sender.commit()
    before = len(sender.records)
    handle(stitched([], T0 + 1_000, 1), 0, 1)
    part = parts.part(0)
    assert persons_in(part.examples) == {"p1"}
    assert part.repeats is not None and part.repeats.persons() == ["p1"]
    held = {T0: {SCOPE: [Example("p1", T0, "web", "/checkout", "error")]}}
    changed: set[int] = set()
    assert forget_examples(held, changed, follower.list, "test") == 0
    assert persons_in(held) == {"p1"} and not changed
    sender.commit()
    # Only the input's own marker and watermarks were written: no window rewritten.
    keys = {k.decode() for _t, _v, k, _p in sender.records[before:] if k is not None}
    assert not any(k.startswith(("w", "r")) for k in keys)


# -- the detector --------------------------------------------------------------------------


def example(person: str, at: int) -> dict[str, Any]:
    return Example(person, at, "web", "/checkout", "error").to_dict()


def spike(window: int, persons: list[str]) -> list[bytes]:
    """Both partitions' windows at `window`, friction well over the threshold, with examples
    of `persons` from partition 0."""
    start = T0 + window * S
    messages = []
    for partition, friction in ((0, 9), (1, 8)):
        rows = [
            orjson.dumps(
                {
                    "w": ["friction", "web:/checkout"],
                    "s": start,
                    "c": {"exposures": 30, "friction": friction},
                    "p": None,
                    "b": False,
                }
            )
        ]
        if partition == 0:
            found = [example(p, start + 1_000 * (i + 1)) for i, p in enumerate(persons)]
            rows.append(orjson.dumps({"x": SCOPE, "s": start, "e": found}))
        messages.append(envelope.encode(rows, start + S, partition))
    return messages


def feed(detect: FrictionDetection, messages: list[bytes], offset: int) -> int:
    for message in messages:
        detect.handle(message, offset)
        offset += 1
    return offset


def context_persons(detect: FrictionDetection) -> set[str]:
    return persons_in(detect.decision().context.examples)


def published_persons(detect: FrictionDetection) -> set[str]:
    d = detect.decision()
    return {e.person_id for g in d.groups.groups() if g.published for e in g.published.examples}


def test_an_erased_persons_examples_leave_the_alert_context_and_alerts_state() -> None:
    s = settings()
    topics = Topics.from_settings(s.topics)
    sender, follower = RecordingSender(), Follower()
    watch = SuppressionWatch(follower)
    detect = detection(sender, s)
    offset = feed(detect, spike(0, ["gone", "kept"]) + spike(1, ["other"]), 0)
    sender.commit()
    assert context_persons(detect) == {"gone", "kept", "other"}
    assert "gone" in published_persons(detect)
    fired = alerts(sender, topics)
    assert fired and "gone" in {e.person_id for e in fired[-1].examples}

    follower.erase("gone")
    assert watch.fresh("detector", detect.table[0])
    went = forget_alert_examples(detect, watch.list)
    assert went == 1 + 1  # one held for the next versions, one in the published alert
    assert context_persons(detect) == {"kept", "other"}
    assert published_persons(detect) == {"kept", "other"}
    # The input that found the erasure closes nothing (one partition's half of a window):
    # its transaction carries the removal.
    first_half, second_half = spike(2, ["more"])
    offset = feed(detect, [first_half], offset)
    sender.commit()
    assert b"gone" not in orjson.dumps(latest_rows(sender.records, detect.table.topic))
    restored = detection(RecordingSender(), s, sender.records)
    assert context_persons(restored) == {"kept", "other", "more"}
    assert published_persons(restored) == {"kept", "other"}

    feed(detect, [second_half], offset)
    later = alerts(sender, topics)[len(fired) :]
    assert later and all(e.person_id != "gone" for r in later for e in r.examples)


def test_examples_on_their_way_to_the_detector_after_the_erasure_are_not_kept() -> None:
    s = settings()
    follower = Follower()
    detect = detection(RecordingSender(), s)
    detect.erased = erased_person(SuppressionWatch(follower))
    follower.erase("gone")
    feed(detect, spike(0, ["gone", "kept"]), 0)
    assert context_persons(detect) == {"kept"}


def test_the_detector_keeps_everything_while_the_list_is_empty() -> None:
    s = settings()
    follower = Follower()
    watch = SuppressionWatch(follower)
    detect = detection(RecordingSender(), s)
    detect.erased = erased_person(watch)
    feed(detect, spike(0, ["p1", "p2"]), 0)
    assert not watch.fresh("detector", detect.table[0])
    assert forget_alert_examples(detect, watch.list) == 0
    assert context_persons(detect) == {"p1", "p2"}
    assert not detect.decision().republished
