"""Routing an event to its person: the anchor's person from the authority's map, else the
anchor's own id; junk never anchors; what must reach the authority."""

from __future__ import annotations

from schemas.identity_rules import IdentityRules
from schemas.partitioning import partition_for
from stream_processors.identity.core.records import person_id
from stream_processors.identity.core.routing import Router

RULES = IdentityRules()
T = "2025-03-01T09:00:00+00:00"


def test_a_lone_identifier_routes_to_the_person_it_names_on_that_persons_partition() -> None:
    route = Router(RULES, {}, 12).route({"anonymous_id": "a-1", "customer_id": None})
    pid = person_id("anonymous_id:a-1")
    assert route == (pid, "anonymous_id:a-1", partition_for(pid.encode(), 12), False, False)


def test_the_highest_priority_identifier_anchors_and_the_map_overrides_it() -> None:
    merged = person_id("customer_id:c-1")
    router = Router(RULES, {"loyalty_id:L-1": merged}, 12)
    route = router.route({"anonymous_id": "a-1", "loyalty_id": "L-1"})
    assert route.key == "loyalty_id:L-1" and route.person_id == merged
    assert route.partition == partition_for(merged.encode(), 12)
    assert route.link and not route.junk


def test_junk_never_anchors_but_is_sent_to_be_audited() -> None:
    router = Router(RULES, {}, 4)
    route = router.route({"customer_id": "undefined", "anonymous_id": "a-9"})
    assert route.key == "anonymous_id:a-9" and route.junk and route.link
    only_junk = router.route({"customer_id": "NULL"})
    assert only_junk.person_id is None and only_junk.partition is None and only_junk.junk
    assert router.route({}).link is False and router.route(None).person_id is None


def test_a_link_already_sent_with_an_earlier_time_and_id_is_not_news() -> None:
    router = Router(RULES, {}, 4)
    ids = {"customer_id": "c-1", "anonymous_id": "a-1"}
    assert router.is_news(ids, T, "e5")
    assert not router.is_news(ids, T, "e7")  # same time, larger id: decided by e5 already
    assert not router.is_news(ids, "2025-03-01T10:00:00Z", "e1")
    assert router.is_news(ids, T, "e2")  # same time, smaller id: it wins the tie
    assert router.is_news(ids, "2025-03-01T08:00:00Z", "e9")  # earlier: may change decisions
    assert router.is_news({"customer_id": "c-1", "device_id": "d-1"}, T, "e9")
