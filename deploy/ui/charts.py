"""What each chart of the page shows, built from query answers: the funnel's bars per first
channel, the Sankey of paths before drop-offs, the drop-off trend in time buckets, the alert
timeline's bars and the person's lanes. Pure: answers in, plain data (ECharts' shapes) out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from deploy.query.answers import Answer

# Trend buckets by the length of the range shown: about 24 to 90 bars for the ranges people
# look at (a day or three, a week or three, longer).
BUCKETS = ((timedelta(days=3), timedelta(hours=1)), (timedelta(days=21), timedelta(hours=6)))
LONG_BUCKET = timedelta(days=1)
DROPPED = "dropped at"
# A drop-off whose journey left no touchpoint in the path (the path is empty).
NO_PATH = "(no touchpoint)"


def bucket_for(since: datetime, until: datetime) -> timedelta:
    """The trend's bucket for a range from `since` to `until`."""
    length = until - since
    return next((bucket for longest, bucket in BUCKETS if length <= longest), LONG_BUCKET)


def funnel(answer: Answer, stages: Sequence[str]) -> dict[str, Any]:
    """Journeys reaching each stage (in `stages` order, then any other) per first channel:
    `{"stages": [...], "series": [{"name": channel, "data": [journeys per stage]}]}`."""
    stage, channel = answer.column("stage"), answer.column("first_channel")
    journeys = answer.column("journeys")
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    order = list(stages)
    for row in answer.rows:
        counts[row[channel]][row[stage]] += int(row[journeys])
        if row[stage] not in order:
            order.append(row[stage])
    series = [
        {"name": name, "data": [counts[name].get(s, 0) for s in order]} for name in sorted(counts)
    ]
    return {"stages": order, "series": series}


def paths(answer: Answer) -> dict[str, Any]:
    """The paths before drop-offs as a Sankey: a node per step and its distance from the
    drop-off (so the graph has no cycle: the same step twice in a path is two nodes), one
    end node per stage dropped at; links carry the drop-offs that took them. Nodes:
    `{"name": unique, "step": shown, "depth": steps before}`."""
    stage, path, dropped = (answer.column(c) for c in ("stage", "path", "dropped"))
    nodes: dict[str, dict[str, Any]] = {}
    links: dict[tuple[str, str], int] = defaultdict(int)
    for row in answer.rows:
        steps = [s for s in str(row[path]).split(" > ") if s] or [NO_PATH]
        names = [_node(nodes, step, len(steps) - i) for i, step in enumerate(steps)]
        names.append(_node(nodes, f"{DROPPED} {row[stage]}", 0))
        for source, target in pairwise(names):
            links[source, target] += int(row[dropped])
    return {
        "nodes": sorted(nodes.values(), key=lambda n: (-n["depth"], n["name"])),
        "links": [{"source": s, "target": t, "value": v} for (s, t), v in sorted(links.items())],
    }


def _node(nodes: dict[str, dict[str, Any]], step: str, depth: int) -> str:
    name = step if depth == 0 else f"{step} #{depth}"
    nodes.setdefault(name, {"name": name, "step": step, "depth": depth})
    return name


def trend(answer: Answer, stages: Sequence[str], bucket: timedelta) -> dict[str, Any]:
    """Drop-offs per stage (in `stages` order, then any other) and bucket, every bucket
    from the first to the last that has any (none missing, so bars keep their place):
    `{"buckets": [start, ...], "series": [{"name": stage, "data": [dropped per bucket]}]}`."""
    at, stage, dropped = (answer.column(c) for c in ("bucket", "stage", "dropped"))
    counts: dict[str, dict[datetime, int]] = defaultdict(dict)
    for row in answer.rows:
        counts[row[stage]][row[at]] = int(row[dropped])
    if not answer.rows:
        return {"buckets": [], "series": []}
    first, last = min(r[at] for r in answer.rows), max(r[at] for r in answer.rows)
    buckets = [first + bucket * n for n in range(int((last - first) / bucket) + 1)]
    order = [s for s in stages if s in counts] + sorted(set(counts) - set(stages))
    series = [{"name": s, "data": [counts[s].get(b, 0) for b in buckets]} for s in order]
    return {"buckets": buckets, "bucket_seconds": int(bucket.total_seconds()), "series": series}


def alerts(answer: Answer) -> dict[str, Any]:
    """The timeline's bars: one per alert on its lane (where, and which series: `web /cart ·
    payment_declined`), from its start to its resolution (or the end of the last window it
    covers while it still fires)."""
    col = {name: answer.column(name) for name in answer.columns}
    bars = [
        {
            "id": row[col["incident_id"]],
            "lane": " · ".join(filter(None, (row[col["place"]], row[col["series_name"]]))),
            "status": row[col["status"]],
            "severity": row[col["severity"]],
            "start": row[col["started_at"]],
            "end": row[col["resolved_at"]] or row[col["last_window_end"]],
            "explanation": row[col["explanation"]],
        }
        for row in answer.rows
    ]
    lanes = sorted({bar["lane"] for bar in bars})
    return {"lanes": lanes, "bars": bars}


def person(answer: Answer) -> dict[str, Any]:
    """The person's timeline as points on lanes: a channel's lane for what happened on one,
    else the kind's (identity records, journey outcomes); one series per kind."""
    at, kind, channel, what = (answer.column(c) for c in ("at", "kind", "channel", "what"))
    series: dict[str, list[list[Any]]] = defaultdict(list)
    lanes: list[str] = []
    for row in answer.rows:
        lane = row[channel] or row[kind]
        if lane not in lanes:
            lanes.append(lane)
        series[row[kind]].append([row[at], lane, row[what]])
    return {
        "lanes": sorted(lanes),
        "series": [{"name": k, "data": v} for k, v in sorted(series.items())],
    }
