"""Alerts over incidents: one per problem (`alert_groups`), their records and what they say
(`alert_records`, `alert_context`)."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from stream_processors.friction.alerts.core.context import (
    DROPOFF_EXAMPLE,
    FRICTION_EXAMPLE,
    AlertContext,
    example_scope,
)
from stream_processors.friction.alerts.core.groups import AlertGroups, Group, relation_keys
from stream_processors.friction.alerts.core.incident_records import Incident
from stream_processors.friction.alerts.core.incidents import Incidents
from stream_processors.friction.alerts.core.records import AlertRecord, Example
from stream_processors.friction.core.rules import Series
from stream_processors.friction.core.windows import Advance, WindowCounts
from tests.unit.friction.alerts.builders import (
    CHECKOUT,
    SIZE,
    T0,
    at,
    closed,
    make_alert,
    tracker,
)

WEB_WIDE = Series("friction", "web:*", "friction")
APP = Series("friction", "app:payment", "app_crash")
STORE = Series("volume", "store:pos", "events")
CHECKOUT_DROPS = Series("dropoff", "purchase:checkout:web", "dropoff")


def run(
    steps: list[tuple[int, list[Series]]],
    groups: AlertGroups | None = None,
    incidents: Incidents | None = None,
) -> tuple[AlertGroups, list[AlertRecord]]:
    """Alerts per window index (each series alerting in it), through incidents and groups;
    every published alert version, in order."""
    incidents, groups = incidents or tracker(), groups or AlertGroups()
    published = []
    for index, series in steps:
        records = incidents.process([make_alert(index, s) for s in series], closed(index))
        for group in groups.process(records, incidents.front_ms):
            record = groups.publish(group, group.record())
            if record is not None:
                published.append(record)
    return groups, published


def quiet(first: int, last: int) -> list[tuple[int, list[Series]]]:
    return [(i, []) for i in range(first, last + 1)]


def test_related_series_of_one_problem_are_one_alert() -> None:
    _, published = run([(10, [CHECKOUT]), (11, [CHECKOUT, WEB_WIDE]), *quiet(12, 16)])
    ids = {r.incident_id for r in published}
    assert len(ids) == 1
    last = published[-1]
    assert last.status == "resolved"
    assert last.series == CHECKOUT  # the touchpoint is the headline, not the whole channel
    assert [r.series for r in last.related] == [WEB_WIDE]
    assert [(r.status, r.notify) for r in published if r.notify] == [
        ("firing", True),
        ("resolved", True),
    ]
    assert [r.version for r in published] == list(range(1, len(published) + 1))


def test_unrelated_series_are_separate_alerts() -> None:
    _, published = run([(10, [CHECKOUT, APP]), *quiet(11, 15)])
    assert len({r.incident_id for r in published}) == 2


def test_a_stage_joins_by_journey_across_channels() -> None:
    drops = Series("dropoff", "purchase:checkout:web", "dropoff")
    entries = Series("entries", "purchase:purchase:store", "entered")
    _, published = run([(10, [STORE]), (11, [STORE, entries]), (13, [drops]), *quiet(14, 18)])
    assert len({r.incident_id for r in published}) == 1
    assert {r.series for r in published[-1].related} == {entries, drops}


def test_out_of_reach_it_is_a_new_alert() -> None:
    _, published = run([(10, [CHECKOUT]), *quiet(11, 14), (30, [WEB_WIDE]), *quiet(31, 35)])
    assert len({r.incident_id for r in published}) == 2


def test_firing_again_after_resolution_pages_again() -> None:
    _, published = run([(10, [CHECKOUT]), *quiet(11, 13), (14, [CHECKOUT]), *quiet(15, 18)])
    pages = [(r.incident_id, r.status) for r in published if r.notify]
    assert [s for _, s in pages] == ["firing", "resolved", "firing", "resolved"]
    assert len({i for i, _ in pages}) == 1  # the same problem, within reach


def test_a_withdrawn_alert_is_retracted() -> None:
    incidents, groups = tracker(), AlertGroups()
    out = []
    for alerts, window in (([make_alert(10)], 10), ([make_alert(10, retracted=True)], 11)):
        records = incidents.process(alerts, closed(window))
        for group in groups.process(records, incidents.front_ms):
            record = groups.publish(group, group.record())
            if record is not None:
                out.append(record)
    assert [(r.status, r.notify) for r in out] == [("firing", True), ("retracted", True)]


def test_a_restart_neither_loses_nor_repages() -> None:
    incidents = tracker()
    groups, before = run([(10, [CHECKOUT]), (11, [CHECKOUT])], incidents=incidents)
    restored, again = AlertGroups(), tracker()
    restored.restore(orjson.loads(orjson.dumps(groups.snapshot())))
    again.restore(orjson.loads(orjson.dumps(incidents.snapshot())))
    _, after = run([(12, [CHECKOUT]), *quiet(13, 16)], restored, again)
    assert {r.incident_id for r in after} == {before[0].incident_id}
    assert after[0].version == before[-1].version + 1
    assert [r.status for r in after if r.notify] == ["resolved"]


@pytest.mark.parametrize(
    ("series", "keys"),
    [
        (Series("friction", "web:/checkout", "error"), {"channel:web"}),
        (Series("friction", "web:*", "friction"), {"channel:web"}),
        (Series("volume", "store:pos", "events"), {"channel:store"}),
        (Series("dropoff", "purchase:checkout:*", "dropoff"), {"journey:purchase"}),
        (
            Series("entries", "support:contact:call_center", "entered"),
            {"journey:support", "channel:call_center"},
        ),
    ],
)
def test_relation_keys(series: Series, keys: set[str]) -> None:
    assert relation_keys(series) == keys


def record_of(*series: Series) -> AlertRecord:
    _, published = run([(10, list(series))])
    return published[-1]


def test_a_record_reads_back_from_its_json_and_its_row() -> None:
    record = replace(
        record_of(CHECKOUT, WEB_WIDE),
        team="payments",
        cause="rose",
        route="route[0]",
        examples=(Example("p1", T0, "web", "/checkout", "error", "j1"),),
    )
    assert AlertRecord.from_dict(orjson.loads(orjson.dumps(record.to_dict()))) == record
    row = record.row()
    assert (row["series_kind"], row["scope"], row["series_name"]) == tuple(CHECKOUT)
    assert row["related_series"] == [str(WEB_WIDE)]
    assert isinstance(row["started_at"], float)
    assert AlertRecord.from_dict(orjson.loads(orjson.dumps(row))) == record


def test_an_alert_record_is_an_incident_for_the_webhooks() -> None:
    record = record_of(CHECKOUT)
    assert isinstance(record, Incident)
    assert record.to_dict()["place"] == "web /checkout"


# -- context: cause and examples -----------------------------------------------------------


def friction_window(index: int, scope: str, counts: dict[str, int]) -> WindowCounts:
    start = T0 + index * SIZE
    return WindowCounts(("friction", scope), start, start + SIZE, 1, counts, None, False)


def context_with(windows: list[WindowCounts], first: int, last: int) -> AlertContext:
    context = AlertContext()
    context.observe(Advance(tuple(windows), closed(first, last), T0 + (last + 1) * SIZE))
    return context


def test_the_cause_names_what_rose_at_the_touchpoint() -> None:
    normal = {"exposures": 100, "error": 2, "friction": 3}
    windows = [friction_window(i, "web:/checkout", normal) for i in range(12)]
    spike = {"exposures": 100, "error": 30, "friction": 31}
    windows += [friction_window(i, "web:/checkout", spike) for i in (12, 13)]
    windows += [friction_window(i, "app:home", {"exposures": 50, "app_crash": 9}) for i in (12, 13)]
    context = context_with(windows, 0, 13)
    record = replace(record_of(CHECKOUT), last_window_end=at(14), started_at=at(12))
    context.remember_reference(record.incident_id, T0 + 12 * SIZE)
    cause = context.cause(record)
    assert "error at web:/checkout 60 vs 4.0 expected" in cause
    assert "app:home" not in cause  # another channel


def test_a_silent_source_is_said_so() -> None:
    record = replace(record_of(STORE), kind="volume_collapse", observed=0, expected=58.0)
    assert "source pos (store) went quiet: 0 vs 58.0 expected" in AlertContext().cause(record)


def test_examples_come_from_the_alerts_own_places_and_windows() -> None:
    context = AlertContext()
    mine = Example("p1", T0 + 10 * SIZE + 5, "web", "/checkout", "error")
    other = Example("p2", T0 + 10 * SIZE + 6, "web", "/cart", "error")
    dropped = Example("p3", T0 + 11 * SIZE, "web", "/checkout", "dropped off at checkout", "j3")
    context.add_examples(T0 + 10 * SIZE, example_scope(FRICTION_EXAMPLE, "web:/checkout"), [mine])
    context.add_examples(T0 + 10 * SIZE, example_scope(FRICTION_EXAMPLE, "web:/cart"), [other])
    context.add_examples(
        T0 + 11 * SIZE, example_scope(DROPOFF_EXAMPLE, "purchase:checkout:web"), [dropped]
    )
    record = replace(record_of(CHECKOUT, CHECKOUT_DROPS), started_at=at(10), last_window_end=at(12))
    assert context.examples_for(record) == (mine, dropped)


def test_groups_keep_their_members_latest_records() -> None:
    groups, _ = run([(10, [CHECKOUT]), (11, [CHECKOUT]), *quiet(12, 15)])
    (group,) = groups.groups()
    assert isinstance(group, Group)
    assert [m.status for m in group.members.values()] == ["resolved"]


# The end of a feed: every source and stage goes quiet at once. Two channels, chained by the
# purchase journey: which alerts form must not depend on the order the detector said them in
# (a paused upstream stage changes that order; the chaos suite found it after a SIGKILL).
QUIET_AT_ONCE = [
    Series("volume", "web:web-shop", "events"),
    Series("entries", "support:issue:web", "entered"),
    Series("volume", "store:pos", "events"),
    Series("entries", "purchase:purchase:store", "entered"),
    Series("entries", "purchase:checkout:web", "entered"),
]


def alerts_of(published: list[AlertRecord]) -> set[tuple[str, Series, frozenset[Series]]]:
    last = {r.incident_id: r for r in published}
    return {(i, r.series, frozenset(x.series for x in r.related)) for i, r in last.items()}


@pytest.mark.parametrize("seed", range(8))
def test_alerts_do_not_depend_on_the_order_of_one_windows_alarms(seed: int) -> None:
    import random

    order = list(QUIET_AT_ONCE)
    random.Random(seed).shuffle(order)
    _, want = run([(10, QUIET_AT_ONCE), (11, QUIET_AT_ONCE), *quiet(12, 16)])
    _, got = run([(10, order), (11, order[::-1]), *quiet(12, 16)])
    assert alerts_of(got) == alerts_of(want)
    # The headline is the most specific series (a count that collapsed before entries).
    assert all(series.kind == "volume" for _, series, _ in alerts_of(got))
