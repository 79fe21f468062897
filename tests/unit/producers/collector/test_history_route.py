"""`/v1/import` is history: its events go to the history domain's `raw`,
never in one message with live events, while `/v1/batch` stays live."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from producers.collector.delivery import DeliveryError, KafkaDelivery
from schemas import envelope
from schemas.settings import BatchSettings
from schemas.touchpoint import Touchpoint
from tests.unit.producers.collector.builders import (
    WEB_KEY,
    FakeDeliverer,
    app,
    basic,
    call,
    track,
)
from tests.unit.producers.collector.test_delivery import FakePublisher, acknowledge_when_sent

HISTORY_RAW = "t.history.raw"


def test_import_is_delivered_as_history_and_batch_as_live() -> None:
    deliverer = FakeDeliverer()
    application = app(deliverer)
    headers = {"authorization": basic(WEB_KEY)}
    body = orjson.dumps({"batch": [track(1), track(2)]})
    assert call(application, "POST", "/v1/import", body, headers).status == 200
    assert call(application, "POST", "/v1/batch", orjson.dumps({"batch": [track(3)]}), headers)
    history = [Touchpoint.model_validate_json(f) for _k, f in deliverer.history]
    live = [Touchpoint.model_validate_json(f) for _k, f in deliverer.events]
    assert [e.backfill for e in history] == [True, True]
    assert [e.backfill for e in live] == [False]


def test_history_and_live_events_never_share_a_message() -> None:
    publisher = FakePublisher()

    async def scenario() -> None:
        d = KafkaDelivery(
            publisher,  # type: ignore[arg-type]
            "t.dlq.ingest",
            BatchSettings(),
            0.01,
            history_topic=HISTORY_RAW,
        )
        d.start()
        live = d.deliver([("customer_id:a", b'{"n":1}')], [], "s", 5.0)
        past = d.deliver([("customer_id:a", b'{"n":2}')], [], "s", 5.0, history=True)
        await asyncio.gather(live, past, acknowledge_when_sent(publisher, 2, None))
        await d.close()

    sent: list[tuple[str, list[object]]] = []
    original = publisher.report

    def keep(error: str | None = None) -> None:
        for topic, _partition, value, _done in publisher.sent:
            sent.append((topic, envelope.decode(value).events))
        original(error)

    publisher.report = keep  # type: ignore[method-assign]
    asyncio.run(scenario())
    assert sorted(sent) == [(HISTORY_RAW, [{"n": 2}]), ("t.raw", [{"n": 1}])]


def test_a_collector_without_a_history_topic_refuses_history() -> None:
    publisher = FakePublisher()

    async def scenario() -> None:
        d = KafkaDelivery(publisher, "t.dlq.ingest", BatchSettings(), 0.01)  # type: ignore[arg-type]
        await d.deliver([("customer_id:a", b"{}")], [], "s", 5.0, history=True)

    with pytest.raises(DeliveryError, match="history"):
        asyncio.run(scenario())
    assert publisher.sent == []
