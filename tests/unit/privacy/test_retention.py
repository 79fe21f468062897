"""topics.retention_hours bounds how long the data topics keep an erased person's events."""

from __future__ import annotations

from deploy.kafka_admin import topic_specs
from schemas.settings import Settings


def test_retention_applies_to_data_topics_only() -> None:
    default = {s.name: s.config for s in topic_specs(Settings())}
    bounded = {s.name: s.config for s in topic_specs(Settings(topics={"retention_hours": 24}))}
    assert "retention.ms" not in default["journeys.raw"]
    for name in ("journeys.raw", "journeys.touchpoints", "journeys.stitched"):
        assert bounded[name]["retention.ms"] == str(24 * 3600 * 1000)
    for name, config in bounded.items():
        if config.get("cleanup.policy") == "compact" or name.startswith("journeys.dlq."):
            assert config == default[name], name  # compacted and dead-letter topics as they were
    assert bounded["journeys.privacy-audit"]["retention.ms"] == "-1"
