"""Contract v2's typed channel blocks and stated friction reach ClickHouse: the frozen v2
samples go through the ingest core as the stage forwards them, into the real `touchpoints`
table (chDB), and come back queryable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from sinks.clickhouse import insert_json_rows, migrate, session
from stream_processors.ingest.core.admission import Ingest

V2 = Path(__file__).resolve().parents[1] / "fixtures" / "contracts" / "v2"


def test_v2_blocks_and_stated_friction_are_stored_and_queryable(tmp_path: Path) -> None:
    samples = [orjson.loads(p.read_bytes()) for p in sorted(V2.glob("*.json"))]
    ingest = Ingest({}, timedelta(days=7), timedelta(minutes=5))
    result = ingest.process(samples, datetime(2025, 7, 1, tzinfo=UTC))
    assert not result.rejected and len(result.fragments) == len(samples)
    rows = [{**orjson.loads(f), "person_id": "p", "person_key": "k"} for f in result.fragments]
    with session(f"chdb://{tmp_path / 'ch'}") as ch:
        migrate(ch)
        insert_json_rows(ch, "touchpoints", orjson.dumps(rows), "v2-samples")
        stored: dict[str, float] = {
            str(event_id): float(wait)
            for event_id, wait in ch.query(
                "SELECT toString(event_id), JSONExtractFloat(call_center, 'wait_seconds') "
                "FROM touchpoints WHERE channel = 'call_center'"
            ).result_rows
        }
        blocks = ch.query(
            "SELECT channel, countIf(isNotNull(web)), countIf(isNotNull(app)), "
            "countIf(isNotNull(call_center)), countIf(isNotNull(store)) "
            "FROM touchpoints GROUP BY channel ORDER BY channel"
        ).result_rows
        stated = ch.query(
            "SELECT arrayJoin(friction).signal FROM touchpoints ORDER BY 1"
        ).result_rows
    want = {
        s["event_id"]: s["call_center"].get("wait_seconds", 0.0)
        for s in samples
        if s["channel"] == "call_center" and "call_center" in s
    }
    assert stored == {k: float(v) for k, v in want.items()}
    # Every sample's block lands in its own channel's column and nowhere else.
    per_channel = {
        ch_name: sum(1 for s in samples if s["channel"] == ch_name and ch_name in s)
        for ch_name in ("app", "call_center", "store", "web")
    }
    for channel, web, app, call, store in blocks:
        counts = {"web": web, "app": app, "call_center": call, "store": store}
        assert counts[channel] == per_channel[channel]
        assert sum(counts.values()) == counts[channel]
    expected = sorted(f["signal"] for s in samples for f in s.get("friction", ()))
    assert [r[0] for r in stated] == expected
