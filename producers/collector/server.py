"""Wiring the collector from the settings and serving it with uvicorn (`journeys collector`)."""

from __future__ import annotations

import logging
import math

import uvicorn

from producers.collector.app import CollectorApp
from producers.collector.auth import Sources
from producers.collector.delivery import KafkaDelivery
from producers.collector.intake import Intake
from producers.collector.protocol import Limits
from producers.collector.ratelimit import RateLimiter
from producers.collector.scrub import Scrubber
from producers.pii import PiiHasher
from producers.publisher import Publisher
from schemas.settings import Settings
from schemas.topics import Topics

log = logging.getLogger(__name__)


def build_intake(settings: Settings) -> Intake:
    """The pure request logic, configured."""
    c = settings.collector
    return Intake(
        Sources.from_settings(c.sources),
        Limits(c.max_event_bytes, c.max_batch_bytes),
        RateLimiter(c.rate_limit_per_key_per_second, c.rate_limit_burst_seconds),
        Scrubber(PiiHasher(settings.pii)),
        settings.processor.future_tolerance,
        max_age=settings.processor.max_event_age,
    )


def build_app(settings: Settings) -> CollectorApp:
    """The ASGI app, publishing to this deployment's `raw` and ingest dead-letter topics."""
    c = settings.collector
    topics = Topics.from_settings(settings.topics)
    producer_conf = {
        # A request waits for its acknowledgement: keep Kafka's own batching short, and let
        # librdkafka give up (and the request get 503) by the collector's deadline.
        "linger.ms": 5,
        "message.timeout.ms": int(c.ack_timeout_seconds * 1000),
    }
    publisher = Publisher(settings.kafka, topics.raw, settings.batch, producer_conf)
    delivery = KafkaDelivery(publisher, topics.dlq_ingest, settings.batch, c.linger_seconds)
    return CollectorApp(build_intake(settings), delivery, c.cors_origins, c.ack_timeout_seconds)


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM; in-flight requests finish, queued events are flushed."""
    if not settings.collector.sources:
        log.warning(
            "collector: no sources configured (JOURNEYS_COLLECTOR__SOURCES): "
            "every tracking request will get 401"
        )
    app = build_app(settings)
    grace = math.ceil(settings.collector.ack_timeout_seconds)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=grace,
    )
    log.info("collector: listening on %s:%d", host, port)
    uvicorn.Server(config).run()
