"""Who an alert's versions page (`paging.py` through `AlertGroups.publish`): every owning team
when it opens, a team that comes to own one of its series while it fires (told what changed
and who was paged before), every team paged when it resolves; a snapshot of the previous
version still restores."""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.alerting import load_alert_routing
from stream_processors.friction.alerts.core.groups import AlertGroups
from stream_processors.friction.alerts.core.incidents import Incidents
from stream_processors.friction.alerts.core.paging import decide
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.alerts.core.routing import AlertRouter
from stream_processors.friction.core.rules import Series
from tests.unit.friction.alerts.builders import CHECKOUT, closed, make_alert, tracker

SHIPPED = Path(__file__).resolve().parents[4] / "deploy" / "alerts" / "routing.toml"
WEB_WIDE = Series("friction", "web:*", "friction")  # storefront's
CART = Series("friction", "web:/cart", "error")  # storefront's
# CHECKOUT (web:/checkout) is the payments team's.


def routed() -> AlertGroups:
    return AlertGroups(router=AlertRouter(load_alert_routing(SHIPPED, environ={})))


def run(
    steps: list[tuple[int, list[Series]]], groups: AlertGroups, incidents: Incidents | None = None
) -> list[AlertRecord]:
    incidents = incidents or tracker()
    published = []
    for index, series in steps:
        records = incidents.process([make_alert(index, s) for s in series], closed(index))
        for group in groups.process(records, incidents.front_ms):
            record = groups.publish(group, group.record())
            if record is not None:
                published.append(record)
    return published


def pages(published: list[AlertRecord]) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [(r.status, r.page, r.paged_before) for r in published if r.notify]


def quiet(first: int, last: int) -> list[tuple[int, list[Series]]]:
    return [(i, []) for i in range(first, last + 1)]


def test_a_headline_moving_to_another_team_pages_that_team() -> None:
    published = run([(10, [WEB_WIDE]), (11, [WEB_WIDE, CHECKOUT]), *quiet(12, 16)], routed())
    assert len({r.incident_id for r in published}) == 1
    assert pages(published) == [
        ("firing", ("storefront",), ()),
        ("firing", ("payments",), ("storefront",)),  # the new owner, told who had it
        ("resolved", ("storefront", "payments"), ("storefront", "payments")),
    ]
    moved = next(r for r in published if r.page == ("payments",))
    assert moved.series == CHECKOUT and moved.team == "payments"
    assert moved.change == (
        f"the headline moved from {WEB_WIDE} (storefront) to {CHECKOUT} (payments)"
    )
    assert moved.teams == ("payments", "storefront")


def test_a_series_of_another_team_joining_pages_that_team() -> None:
    published = run([(10, [CHECKOUT]), (11, [CHECKOUT, CART]), *quiet(12, 16)], routed())
    joined = [r for r in published if r.page == ("storefront",)]
    assert len(joined) == 1
    assert joined[0].series == CHECKOUT  # the headline stayed
    assert joined[0].change == f"{CART} (storefront) joined the alert"
    assert joined[0].paged_before == ("payments",)
    assert [r.related[0].team for r in joined] == ["storefront"]


def test_updates_of_teams_already_paged_page_no_one() -> None:
    steps = [(10, [CHECKOUT]), (11, [CHECKOUT]), (12, [CHECKOUT]), *quiet(13, 17)]
    published = run(steps, routed())
    assert len(published) > 2  # figures changed, versions were published
    assert pages(published) == [
        ("firing", ("payments",), ()),
        ("resolved", ("payments",), ("payments",)),
    ]


def test_firing_again_pages_the_owners_again() -> None:
    steps = [(10, [CHECKOUT]), *quiet(11, 13), (14, [CHECKOUT]), *quiet(15, 18)]
    published = run(steps, routed())
    assert [(r.status, r.page, r.change) for r in published if r.notify] == [
        ("firing", ("payments",), "opened"),
        ("resolved", ("payments",), "resolved"),
        ("firing", ("payments",), "firing again"),
        ("resolved", ("payments",), "resolved"),
    ]


def test_without_a_router_status_changes_still_page() -> None:
    published = run([(10, [CHECKOUT]), *quiet(11, 14)], AlertGroups())
    assert pages(published) == [("firing", (), ()), ("resolved", (), ())]


def test_a_retraction_pages_everyone_paged() -> None:
    record = run([(10, [WEB_WIDE]), (11, [WEB_WIDE, CHECKOUT])], routed())[-1]
    withdrawn = AlertRecord.from_dict({**record.to_dict(), "status": "retracted"})
    decided = decide(record, withdrawn, "firing", ("storefront", "payments"))
    assert (decided.page, decided.change, decided.notify) == (
        ("storefront", "payments"),
        "retracted",
        True,
    )


def test_a_restart_keeps_who_was_paged() -> None:
    incidents, groups = tracker(), routed()
    run([(10, [WEB_WIDE]), (11, [WEB_WIDE, CHECKOUT])], groups, incidents)
    restored, again = routed(), tracker()
    restored.restore(orjson.loads(orjson.dumps(groups.snapshot())))
    again.restore(orjson.loads(orjson.dumps(incidents.snapshot())))
    after = run([(12, [WEB_WIDE, CHECKOUT]), *quiet(13, 17)], restored, again)
    assert pages(after) == [("resolved", ("storefront", "payments"), ("storefront", "payments"))]


def test_a_snapshot_of_the_previous_version_restores() -> None:
    """Written before teams were tracked: no `paged`, records without `teams`/`page`; the
    last headline's team is taken as paged, so the resolve still reaches it."""
    incidents, groups = tracker(), routed()
    run([(10, [CHECKOUT])], groups, incidents)
    old = orjson.loads(orjson.dumps(groups.snapshot()))
    for row in old["groups"]:
        del row["paged"]
        for key in ("teams", "page", "paged_before", "change"):
            del row["published"][key]
    restored, again = routed(), tracker()
    restored.restore(old)
    again.restore(orjson.loads(orjson.dumps(incidents.snapshot())))
    after = run(quiet(11, 15), restored, again)
    assert pages(after) == [("resolved", ("payments",), ("payments",))]
