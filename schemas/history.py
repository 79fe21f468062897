"""The history time domain: where imported history runs (docs/concepts.md, "History").

History (Segment's `/v1/import`, `journeys publish --history`) is published to topics of its
own, the deployment's prefix plus `history.` (`journeys.history.raw`, ...), and processed by
stage instances of its own (`journeys process STAGE --history`, `journeys sink --history`),
each in its own consumer group. So its event time is its own: old events never move live
time, live events never make history late, and nothing but history's own heartbeats
(`journeys publish --history --close-at TIME`) closes it. The stages' code is the same; only
their settings differ, and this module derives them. Outputs reach the same ClickHouse tables,
the touchpoints flagged `backfill`, which friction learns from and never alerts on.
"""

from __future__ import annotations

from pydantic import SecretStr

from schemas.settings import Settings

HISTORY_PREFIX = "history."


def history_settings(settings: Settings) -> Settings:
    """`settings` for the history domain: topics and consumer groups under the prefix plus
    `history.`, no idle advance (the wall clock says nothing about history's time: a replay
    closes its own with heartbeats), metrics on any free port (the live stages hold theirs),
    an explicit sink group, if any, suffixed likewise, friction without the stage series
    (so nothing in history alerts), and a data folder of its own under
    the live one (a history worker and a live one of a stage on one host each hold their
    worker id there), writing the same ClickHouse."""
    if settings.topics.prefix.endswith(HISTORY_PREFIX):
        return settings  # already history
    topics = settings.topics.model_copy(update={"prefix": settings.topics.prefix + HISTORY_PREFIX})
    processor = settings.processor.model_copy(
        update={
            "idle_after_seconds": 0.0,
            "metrics_port": 0 if settings.processor.metrics_port is not None else None,
        }
    )
    group = settings.sink.group_id
    sink = settings.sink.model_copy(
        update={"group_id": None if group is None else f"{group}.{HISTORY_PREFIX}".rstrip(".")}
    )
    clickhouse = settings.clickhouse.model_copy(update={"dsn": SecretStr(settings.clickhouse_dsn)})
    # Friction counts history's own traffic only, all of it backfill: its windows are learnt
    # from and never alert. Drop-off and entry series are left out: their windows take the
    # backfill flag from the traffic at their start, and at a quiet hour of history there is
    # none, which would make them live (and the history detector's baselines are its own,
    # never the live one's).
    friction = settings.friction.model_copy(update={"stage_series": False})
    return settings.model_copy(
        update={
            "topics": topics,
            "processor": processor,
            "sink": sink,
            "clickhouse": clickhouse,
            "friction": friction,
            "data_dir": settings.data_dir / HISTORY_PREFIX.rstrip("."),
        }
    )
