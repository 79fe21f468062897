"""What reached ClickHouse and the dead-letter topics, for people: counts and text bar charts.

`journeys report` reads ClickHouse (through the sink's live interface while it runs) and needs
no broker: without one, the dead letters, which stay in Kafka, are left out with a one-line
note."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import orjson
from clickhouse_connect.driver.client import Client

from schemas.settings import KafkaSettings, Settings
from schemas.topics import Topics
from stream_processors.runtime.topic_reader import read_to_end


@dataclass
class Summary:
    rows: int = 0
    distinct_events: int = 0
    per_channel: dict[str, int] = field(default_factory=dict)
    per_event_type: list[tuple[str, str, int]] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)
    dead_letters_unread: str | None = None  # why they could not be read
    persons: int = 0
    persons_per_channel_count: dict[str, int] = field(default_factory=dict)
    identity_records: dict[str, int] = field(default_factory=dict)


def touchpoint_summary(client: Client) -> Summary:
    """Counts from the touchpoints table (plain count(): duplicates would show here)."""
    s = Summary()
    s.rows, s.distinct_events = client.query(
        "SELECT count(), uniqExact(event_id) FROM touchpoints"
    ).result_rows[0]
    s.per_channel = {
        str(channel): int(n)
        for channel, n in client.query(
            "SELECT channel, count() FROM touchpoints GROUP BY channel ORDER BY channel"
        ).result_rows
    }
    s.per_event_type = [
        (str(channel), str(event_type), int(n))
        for channel, event_type, n in client.query(
            "SELECT channel, event_type, count() AS n FROM touchpoints "
            "GROUP BY channel, event_type ORDER BY channel, n DESC"
        ).result_rows
    ]
    s.persons = int(
        client.query(
            "SELECT uniqExact(latest_person_id) FROM touchpoints_latest WHERE person_id != ''"
        ).result_rows[0][0]
    )
    s.persons_per_channel_count = {
        f"{n} channel{'s' if n > 1 else ''}": int(count)
        for n, count in client.query(
            "SELECT channels, count() FROM (SELECT latest_person_id, uniqExact(channel) AS "
            "channels FROM touchpoints_latest WHERE person_id != '' GROUP BY latest_person_id) "
            "GROUP BY channels ORDER BY channels"
        ).result_rows
    }
    s.identity_records = {
        f"{kind}: {rule}": int(n)
        for kind, rule, n in client.query(
            "SELECT kind, rule, count() FROM identity_audit FINAL WHERE NOT retracted "
            "GROUP BY kind, rule ORDER BY kind, rule"
        ).result_rows
    }
    return s


@dataclass
class JourneySummary:
    outcomes: dict[str, int] = field(default_factory=dict)  # "<definition>: <status>"
    reached: dict[str, dict[str, int]] = field(default_factory=dict)  # definition -> funnel
    dropoffs: dict[str, int] = field(default_factory=dict)  # "<definition> <stage> (<channel>)"
    retractions: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    tasks_completed: int = 0


def journey_summary(client: Client) -> JourneySummary:
    """Journeys as analysts see them: latest versions, standing drop-offs."""
    s = JourneySummary()
    s.outcomes = {
        f"{d}: {status}": int(n)
        for d, status, n in client.query(
            "SELECT definition_id, status, count() FROM journeys FINAL "
            "WHERE status != 'merged' GROUP BY 1, 2 ORDER BY 1, 2"
        ).result_rows
    }
    for d, stage, n in client.query(
        "SELECT definition_id, to_stage, count() FROM journey_transitions FINAL "
        "WHERE NOT retracted GROUP BY 1, 2 ORDER BY 1, min(at)"
    ).result_rows:
        s.reached.setdefault(str(d), {})[str(stage)] = int(n)
    s.dropoffs = {
        f"{d} {stage} ({channel})": int(n)
        for d, stage, channel, n in client.query(
            "SELECT definition_id, stage, last_channel, count() AS n FROM dropoffs_standing "
            "GROUP BY 1, 2, 3 ORDER BY n DESC LIMIT 12"
        ).result_rows
    }
    s.retractions = {
        f"{what} ({reason})": int(n)
        for what, reason, n in client.query(
            "SELECT retracted, reason, count() FROM journey_retractions FINAL "
            "GROUP BY 1, 2 ORDER BY 3 DESC"
        ).result_rows
    }
    s.sessions, s.tasks_completed = (
        int(v)
        for v in client.query(
            "SELECT count(), countIf(task_completed) FROM sessions FINAL"
        ).result_rows[0]
    )
    return s


def render_journeys(summary: JourneySummary) -> str:
    lines = ["Journey outcomes:", bar_chart(summary.outcomes)]
    for definition, funnel in summary.reached.items():
        lines += ["", f"Funnel: {definition} (journeys reaching each stage)", bar_chart(funnel)]
    lines += [
        "",
        "Standing drop-offs by stage (last channel), top 12:",
        bar_chart(summary.dropoffs),
        "",
        "Retracted outcomes (late progress, returning customers, identity merges):",
        bar_chart(summary.retractions),
        "",
        f"UX sessions: {summary.sessions:,}, with a completed task: {summary.tasks_completed:,}",
    ]
    return "\n".join(lines)


def dead_letter_reasons(kafka: KafkaSettings, topic: str) -> Counter[str]:
    """Read a dead-letter topic from the beginning and count its records by reason."""
    reasons: Counter[str] = Counter()
    for msg in read_to_end(kafka, topic):
        reasons[orjson.loads(msg.value() or b"{}").get("reason", "?")] += 1
    return reasons


def every_dead_letter(kafka: KafkaSettings, topics: Topics) -> Counter[str]:
    """Every stage's dead letters by stage and reason, and the rows ClickHouse refused by
    table (`journeys sink replay-dead-letters` inserts those again once fixed)."""
    counts: Counter[str] = Counter()
    for stage, topic in topics.stage_dead_letters().items():
        for reason, n in dead_letter_reasons(kafka, topic).items():
            counts[f"{stage}: {reason}"] += n
    for msg in read_to_end(kafka, topics.dlq_sink):
        record = orjson.loads(msg.value() or b"{}")
        counts[f"sink: rows refused by {record.get('table', '?')}"] += record.get("row_count") or 1
    return counts


def bar_chart(counts: dict[str, int], width: int = 40) -> str:
    """A horizontal bar chart in plain text."""
    if not counts:
        return "  (nothing)"
    top = max(counts.values()) or 1
    pad = max(len(k) for k in counts)
    return "\n".join(
        f"  {k:<{pad}} {'█' * max(1, round(v / top * width)) if v else ''} {v:,}"
        for k, v in counts.items()
    )


def render(summary: Summary) -> str:
    lines = [
        f"ClickHouse touchpoints: {summary.rows:,} rows, "
        f"{summary.distinct_events:,} distinct events",
        "",
        "Events per channel:",
        bar_chart(summary.per_channel),
        "",
        *_dead_letter_lines(summary),
        "",
        f"Persons (identities stitched across channels): {summary.persons:,}",
        bar_chart(summary.persons_per_channel_count),
        "",
        "Identity merges and refusals:",
        bar_chart(summary.identity_records),
    ]
    return "\n".join(lines)


def _dead_letter_lines(summary: Summary) -> list[str]:
    if summary.dead_letters_unread is not None:
        return [f"Dead-lettered: not read ({summary.dead_letters_unread})"]
    return [
        f"Dead-lettered: {sum(summary.dead_letters.values()):,}",
        bar_chart(dict(summary.dead_letters.most_common())),
    ]


def report(settings: Settings) -> int:
    """`journeys report`: print what reached ClickHouse and, when Kafka answers, the dead
    letters; an exit code."""
    import sys

    from deploy.query.options import QueryError
    from deploy.query.reader import open_journeys

    try:
        with open_journeys(settings.clickhouse_dsn) as client:
            summary = touchpoint_summary(client)
            journeys = journey_summary(client)
    except QueryError as exc:
        print(f"journeys: error: {exc}", file=sys.stderr)
        return 2
    if _kafka_answers(settings.kafka):
        summary.dead_letters = every_dead_letter(
            settings.kafka, Topics.from_settings(settings.topics)
        )
    else:
        summary.dead_letters_unread = (
            f"they stay in Kafka, which is not reachable at {settings.kafka.bootstrap_servers}"
        )
    print(render(summary))
    print()
    print(render_journeys(journeys))
    return 0


def _kafka_answers(kafka: KafkaSettings, timeout: float = 3.0) -> bool:
    """Whether a broker answers, asked quietly: an absent broker is expected here, and
    librdkafka would otherwise print a line per failed connection."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({**kafka.as_librdkafka_dict(), "log_level": 0}).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True
