"""A source that goes quiet at low volume, through the detector, incidents and alert groups:
one alert that stays firing until its traffic returns (never resolved while still down, no
firing/resolved flips, no page per flip), and state that stays bounded however long the
silence lasts (found by the chaos suite's short run: a quiet app source
flipped to version 177 and its group record outgrew a Kafka message)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from stream_processors.friction.alerts.core.groups import MAX_MEMBERS, AlertGroups
from stream_processors.friction.alerts.core.incidents import Incidents
from stream_processors.friction.alerts.core.records import AlertRecord
from stream_processors.friction.core import detector_state
from stream_processors.friction.core.baselines import BaselineConfig
from stream_processors.friction.core.detector import Detector, DetectorConfig
from stream_processors.friction.core.rules import Alert, Series
from stream_processors.friction.core.windows import TumblingWindows, WindowKey
from tests.unit.friction.alerts.builders import closed, make_alert, tracker

SIZE = 5 * 60_000
T0 = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp() * 1000)
APP: WindowKey = ("volume", "app:mobile-app")
ISSUE: WindowKey = ("stage", "support:issue:*")
STATE_BOUND = 256 * 1024  # bytes; a Kafka message is 1 MB by default


class Chain:
    """Windows -> detector -> incidents -> groups, one closed window at a time."""

    def __init__(self) -> None:
        self.windows = TumblingWindows(timedelta(minutes=5), timedelta(minutes=30))
        self.config = DetectorConfig(baseline=BaselineConfig(season_buckets=1))
        self.detector = Detector(self.config)
        self.incidents = Incidents()
        self.groups = AlertGroups()
        self.index = 0
        self.published: list[AlertRecord] = []
        self.largest = 0

    def step(self, counts: dict[WindowKey, dict[str, int]]) -> None:
        at = T0 + self.index * SIZE + 1_000
        for key, named in counts.items():
            for name, n in named.items():
                if n:
                    self.windows.add(key, at, (name,), amount=n)
        self.index += 1
        advance = self.windows.advance(T0 + self.index * SIZE)
        alerts = self.detector.process(advance)
        records = self.incidents.process(alerts, advance.closed)
        for group in self.groups.process(records, self.incidents.front_ms):
            published = self.groups.publish(group, group.record())
            if published is not None:
                self.published.append(published)
        if self.index % 50 == 0:
            self.largest = max(self.largest, self.state_size())

    def state_size(self) -> int:
        """The largest record the stage writes to its changelog (`detection.py`: a row per
        detector row, incident and alert group)."""
        rows: list[Any] = [v for _, v in detector_state.rows(self.detector)]
        rows += self.incidents.snapshot()["incidents"] + self.groups.snapshot()["groups"]
        return max(len(orjson.dumps(row)) for row in rows)

    def of(self, scope: str) -> list[AlertRecord]:
        return [r for r in self.published if r.series.scope == scope]


def poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: small means only.
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def test_a_low_volume_source_that_goes_quiet_is_one_alert_firing_until_it_returns() -> None:
    rng = random.Random(23)
    chain = Chain()
    for _ in range(300):  # a day of about 3 events a window, and 2 entries into support
        chain.step({APP: {"events": poisson(rng, 3.0)}, ISSUE: {"entered": poisson(rng, 2.0)}})
    assert chain.published == []
    # Quiet for 6 days: a stray event now and then (4 in 48 windows), no entries at all.
    # (A series with no data at all for `forget_after`, 7 days, is forgotten: a retired one.)
    for _ in range(6 * 288):
        chain.step({APP: {"events": 1 if rng.random() < 4 / 48 else 0}})
    for scope in ("app:mobile-app", "support:issue:*"):
        records = chain.of(scope)
        assert records, scope
        assert len({r.incident_id for r in records}) == 1, scope
        assert [r.status for r in records if r.notify] == ["firing"], scope
        assert all(r.status == "firing" for r in records), scope
    # Traffic returns: the alert resolves, once.
    for _ in range(100):
        chain.step({APP: {"events": poisson(rng, 3.0)}, ISSUE: {"entered": poisson(rng, 2.0)}})
    app = chain.of("app:mobile-app")
    assert [r.status for r in app if r.notify] == ["firing", "resolved"]
    assert chain.largest < STATE_BOUND, chain.largest


def test_an_alert_that_gathers_episodes_lists_the_latest_of_each_series_and_at_most_a_few() -> None:
    """An alert firing for days gathers episodes (a series that resolves and fires again
    joins it each time); its record lists each series' latest and at most `MAX_MEMBERS`."""
    incidents, groups = tracker(), AlertGroups()
    series = [Series("friction", "web:/cart", f"signal{k}") for k in range(40)]
    alerting: dict[int, list[Alert]] = {}
    for index in range(0, 240, 6):  # every series, in turn, fires and resolves
        alerting[index] = [make_alert(index, series[index // 6])]
        alerting[index + 3] = [make_alert(index + 3, series[0])]  # one fires now and then
    members = 0
    for index in range(245):
        records = incidents.process(alerting.get(index, []), closed(index))
        for group in groups.process(records, incidents.front_ms):
            members = max(members, len(group.members))
    (group,) = groups.groups()
    assert members == MAX_MEMBERS
    assert len({m.series for m in group.members.values()}) == len(group.members)
    assert len(group.record().related) == MAX_MEMBERS - 1
