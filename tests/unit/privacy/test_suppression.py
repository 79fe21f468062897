"""The suppression list and the erasure scope's pure decisions."""

from __future__ import annotations

import orjson
import pytest

from deploy.privacy.scope import identity_keys, merged_closure, owned
from producers.pii import hash_with
from schemas.privacy import SuppressionList
from schemas.settings import PiiSettings, Settings
from sinks.privacy import SinkSuppression
from stream_processors.identity.core.records import person_id

PII = PiiSettings(keys={"a": "key-a", "b": "key-b"}, active_key_id="b")


def listing(*values: str, key_id: str = "a") -> SuppressionList:
    found = SuppressionList(lambda k, v: hash_with(PII, k, v))
    for value in values:
        found.add(hash_with(PII, key_id, value))
    return found


def test_an_event_is_held_by_any_of_its_identifiers_and_only_then() -> None:
    erased = listing("email_hash:dev:abc")
    assert erased.holds_event({"identity": {"anonymous_id": "x", "email_hash": "dev:abc"}})
    assert not erased.holds_event({"identity": {"anonymous_id": "x", "email_hash": "dev:abd"}})
    assert not erased.holds_event({"no": "identity"})


@pytest.mark.parametrize("key_id", ["a", "b"])
def test_entries_made_with_any_configured_key_match(key_id: str) -> None:
    assert listing("customer_id:c-1", key_id=key_id).holds(["customer_id:c-1"])


@pytest.mark.parametrize(
    "row",
    [
        {"person_id": "p1", "stage": "browse"},
        {"identifier": "customer_id:c-1", "person_id": "p9"},
        {"person_id": "p9", "old_person_ids": ["p1"], "identifiers": []},
        {"person_id": "p9", "identity": {"customer_id": "c-1", "email_hash": None}},
    ],
)
def test_rows_naming_the_person_or_an_identifier_are_held(row: dict[str, object]) -> None:
    erased = listing("person:p1", "customer_id:c-1")
    assert erased.holds_row(row)
    assert not erased.holds_row({"person_id": "p9", "identity": {"customer_id": "c-2"}})


def test_the_sink_filters_only_erased_rows() -> None:
    sink = SinkSuppression(Settings(pii=PII))
    sink.list = listing("person:p1")
    rows = [{"person_id": "p1", "n": 1}, {"person_id": "p2", "n": 2}]
    kept, dropped = sink.filter("journeys", orjson.dumps(rows))
    assert dropped == 1 and orjson.loads(kept) == [rows[1]]


def test_merged_persons_are_followed_through_chains() -> None:
    merges = [("p1", ["p2"]), ("p2", ["p3"]), ("p9", ["p8"])]
    assert merged_closure("p1", merges) == {"p1", "p2", "p3"}


def test_an_identifier_belongs_to_the_person_only_if_the_graph_says_so() -> None:
    own, shared = "customer_id:c-1", "device_id:shared"
    persons = {person_id(own)}
    moved = "anonymous_id:a-1"
    overrides = {moved: person_id(own)}
    assert owned([own, shared, moved], overrides, persons) == sorted([own, moved])


def test_identity_tuples_become_keys_in_field_order() -> None:
    assert identity_keys(("c-1", None, None, "dev:abc", None, None)) == [
        "customer_id:c-1",
        "email_hash:dev:abc",
    ]
    assert identity_keys({"loyalty_id": "L1", "device_id": None}) == ["loyalty_id:L1"]


def test_the_sink_strips_erased_examples_from_alerts_and_passes_what_it_cannot_read() -> None:
    sink = SinkSuppression(Settings(pii=PII))
    sink.list = listing("person:p1")
    alert = {"incident_id": "i", "examples": [{"person_id": "p1"}, {"person_id": "p2"}]}
    kept, dropped = sink.filter("alerts", orjson.dumps([alert]))
    assert dropped == 1
    assert orjson.loads(kept) == [{"incident_id": "i", "examples": [{"person_id": "p2"}]}]
    assert sink.filter("alerts", b"[not json") == (b"[not json", 0)
