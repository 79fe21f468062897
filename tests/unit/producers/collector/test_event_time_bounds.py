"""The collector's event-time bounds and its history route: times older
than `processor.max_event_age` or beyond the future tolerance are refused with their reason,
never repeating the time; `/v1/import` marks its touchpoints as backfill for the history
domain."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from producers.collector.auth import Sources
from producers.collector.intake import Intake, Outcome, Request
from producers.collector.protocol import Limits
from producers.collector.ratelimit import RateLimiter
from schemas.deadletter import DeadLetter
from schemas.touchpoint import Touchpoint
from tests.unit.producers.collector.builders import (
    NOW,
    SCRUBBER,
    SOURCES,
    WEB_KEY,
    basic,
    track,
)

# NOW is 2025-03-01T12:00Z; the default bound is 730 days.
OLDEST = "2023-03-02T12:00:00Z"


def core(max_age: timedelta = timedelta(days=730)) -> Intake:
    return Intake(
        Sources(SOURCES),
        Limits(max_event_bytes=32_768, max_batch_bytes=500_000),
        RateLimiter(1e6, 1.0),
        SCRUBBER,
        timedelta(minutes=5),
        max_age=max_age,
    )


def post(messages: list[object], path: str = "/v1/batch", intake: Intake | None = None) -> Outcome:
    body = orjson.dumps({"batch": messages})
    return (intake or core()).handle(Request("batch", path, body, basic(WEB_KEY)), NOW, 0.0)


def events(outcome: Outcome) -> list[Touchpoint]:
    return [Touchpoint.model_validate_json(fragment) for _key, fragment in outcome.events]


@pytest.mark.parametrize("field", ["timestamp", "originalTimestamp"])
@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ("2023-03-02T11:59:59Z", "old_timestamp"),
        ("0001-01-01T00:00:00Z", "old_timestamp"),
        ("2025-03-01T12:05:01Z", "future_timestamp"),
        ("2031-07-04T09:08:07Z", "future_timestamp"),
    ],
)
def test_times_out_of_bounds_are_dead_lettered_with_their_reason_not_their_value(
    field: str, when: str, reason: str
) -> None:
    bad = {**track(2, timestamp=None), field: when}
    out = post([track(1), bad])
    assert out.status == 200 and len(out.events) == 1
    (problem,) = out.body["rejected"]
    named = f"batch[1].{field}"
    assert (problem["index"], problem["field"], problem["reason"]) == (1, named, reason)
    (letter,) = [DeadLetter.model_validate_json(d) for d in out.dead_letters]
    assert letter.reason == reason
    assert [e.field for e in letter.errors] == [named]
    date, clock = when[:10], when[11:19]
    for text in (letter.detail, letter.errors[0].message, problem["message"]):
        assert date not in text and clock not in text
    assert when in letter.raw  # the evidence keeps it


def test_a_request_of_only_old_calls_is_a_400_naming_the_field() -> None:
    out = post([track(1, timestamp="0001-01-01T00:00:00Z")])
    assert out.status == 400
    assert (out.body["code"], out.body["field"]) == ("old_timestamp", "batch[0].timestamp")
    assert "0001" not in out.body["message"]


def test_the_bound_is_inclusive_and_a_raised_bound_admits_older_history() -> None:
    assert post([track(1, timestamp=OLDEST)]).status == 200
    ten_years = core(max_age=timedelta(days=3653))
    out = post([track(1, timestamp="2016-01-01T00:00:00Z")], "/v1/import", ten_years)
    assert out.status == 200 and len(out.events) == 1


def test_an_unparsable_time_is_refused_without_repeating_it() -> None:
    out = post([track(1, timestamp="jane.doe@example.com")])
    assert out.body["field"] == "batch[0].timestamp"
    assert "jane.doe" not in orjson.dumps(out.body).decode()


def test_import_is_history_its_touchpoints_backfill_and_batch_stays_live() -> None:
    imported = post([track(1), track(2)], "/v1/import")
    assert imported.history and [e.backfill for e in events(imported)] == [True, True]
    live = post([track(1), track(2)], "/v1/batch")
    assert not live.history and [e.backfill for e in events(live)] == [False, False]
    # The same call imported and sent live is the same event: history never doubles it.
    assert [e.event_id for e in events(imported)] == [e.event_id for e in events(live)]
