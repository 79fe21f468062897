"""The history time domain's settings (schemas/history.py): its own topics and groups, no
idle advance, never the live stages' metrics ports."""

from __future__ import annotations

from dataclasses import astuple

from schemas.history import history_settings
from schemas.settings import Settings
from schemas.topics import Topics


def test_history_has_its_own_topics_groups_and_no_idle_advance() -> None:
    live = Settings(topics={"prefix": "acme."})
    history = history_settings(live)
    live_topics, history_topics = (
        Topics.from_settings(live.topics),
        Topics.from_settings(history.topics),
    )
    assert history_topics.raw == "acme.history.raw"
    assert history_topics.stitched == "acme.history.stitched"
    assert history.topics.group("ingest") == "acme.history.ingest"
    # But for the deployment's privacy topics: an erasure and a key rotation hold for both.
    shared = {t.privacy_suppressions for t in (live_topics, history_topics)}
    shared |= {t.privacy_audit for t in (live_topics, history_topics)}
    shared |= {t.identity_key_aliases for t in (live_topics, history_topics)}
    assert len(shared) == 3
    assert set(astuple(live_topics)).isdisjoint(set(astuple(history_topics)) - shared)
    assert history.processor.idle_after_seconds == 0
    assert history.processor.metrics_port_of("ingest") == 0  # any free port
    # Its own folder for worker ids and faust's files, the same ClickHouse.
    assert history.data_dir == live.data_dir / "history"
    assert history.clickhouse_dsn == live.clickhouse_dsn
    assert not history.friction.stage_series and live.friction.stage_series
    # The live settings are untouched, and deriving twice changes nothing.
    assert live.topics.prefix == "acme." and live.processor.idle_after_seconds == 60
    assert history_settings(history) == history


def test_an_explicit_sink_group_gets_a_history_group_of_its_own() -> None:
    assert history_settings(Settings(sink={"group_id": "s"})).sink.group_id == "s.history"
    assert history_settings(Settings()).sink.group_id is None  # from the prefix
    quiet = Settings(processor={"metrics_port": None})
    assert history_settings(quiet).processor.metrics_port is None
