"""Benchmark of the identity-stitching core: no broker, one core, decode rate from the same run.

The events look like what ingest forwards on `touchpoints` (every identity field present, most
null): one person per 40 events, most events carry one identifier, about 15% two or more
(logins, matched calls, purchases with a loyalty card), 30% of store and call-center events
arrive 1-6 hours late, 1% of persons share a device, 0.5% of web events carry a junk cookie.
About 10% of the events bring a first-seen identifier alone, 1% re-decide a cluster.

A last figure is the cost of the worst case known: a late link into the cluster of a device
shared by 1,000 customers, which is replayed whole.

`bench_identity_authority` times the two halves of the identity stage without a broker: routing
every event, and the authority deciding the link events routing sends it (those with two or
more identifiers it has not sent earlier, and junk ones), as the stage does.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas import envelope
from schemas.identity_rules import IdentityRules
from schemas.touchpoint import IDENTIFIER_FIELDS
from stream_processors.identity.core.authority import Authority
from stream_processors.identity.core.graph import IdentityGraph
from stream_processors.identity.core.routing import Router

from .report import Result

START = datetime(2025, 3, 1, tzinfo=UTC)
_CHANNELS = ("web", "web", "web", "web", "web", "app", "app", "app", "call_center", "store")
_LINKED = {"web": 0.2, "app": 0.2, "call_center": 0.35, "store": 0.35}


def _person(rng: random.Random, n: int) -> dict[str, Any]:
    shared = rng.random() < 0.01
    return {
        "customer_id": f"c-{n}" if rng.random() < 0.6 else None,
        "anonymous_id": [f"a-{n}-{j}" for j in range(rng.randint(1, 3))],
        "device_id": f"d-shared-{n % 50}" if shared else f"d-{n}",
        "phone_hash": f"p{n:08x}",
        "loyalty_id": f"L{n:07d}",
        "email_hash": f"e{n:08x}",
    }


def _identity(rng: random.Random, person: dict[str, Any], channel: str) -> dict[str, str | None]:
    identity: dict[str, str | None] = dict.fromkeys(IDENTIFIER_FIELDS)
    if channel == "web":
        junk = rng.random() < 0.005
        identity["anonymous_id"] = "undefined" if junk else rng.choice(person["anonymous_id"])
    else:
        name = {"app": "device_id", "call_center": "phone_hash", "store": "loyalty_id"}[channel]
        identity[name] = person[name]
    if rng.random() < _LINKED[channel]:
        identity["customer_id"] = person["customer_id"]
        if channel == "web" and rng.random() < 0.3:
            identity["email_hash"] = person["email_hash"]
    return identity


def events(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """`count` touchpoints as ingest forwards them, in arrival order."""
    rng = random.Random(seed)
    persons = [_person(rng, n) for n in range(max(1, count // 40))]
    out: list[dict[str, Any]] = []
    for i in range(count):
        channel = rng.choice(_CHANNELS)
        late = channel in ("call_center", "store") and rng.random() < 0.3
        delay = rng.uniform(3600, 6 * 3600) if late else 0.0
        occurred = START + timedelta(seconds=i * 0.05 - delay)
        out.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "channel": channel,
                "event_type": "touch",
                "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
                "identity": _identity(rng, rng.choice(persons), channel),
            }
        )
    return out


def _run(decoded: list[list[Any]]) -> tuple[float, IdentityGraph]:
    graph = IdentityGraph()
    observe, parse = graph.observe, datetime.fromisoformat
    started = time.perf_counter()
    for batch in decoded:
        for event in batch:
            observe(event["identity"], parse(event["occurred_at"]), event["event_id"])
    return time.perf_counter() - started, graph


def late_link_into_shared_device(customers: int = 1_000, late: int = 20) -> float:
    """Milliseconds per late link that touches a device shared by `customers` customers."""
    graph = IdentityGraph()
    for n in range(customers):
        when = START + timedelta(minutes=n)
        graph.observe({"device_id": "kiosk", "customer_id": f"c{n}"}, when, f"k{n:06d}")
        graph.observe({"anonymous_id": f"a{n}", "customer_id": f"c{n}"}, when, f"w{n:06d}")
    started = time.perf_counter()
    for n in range(late):
        ident = {"phone_hash": f"p{n}", "customer_id": f"c{n * 37 % customers}"}
        graph.observe(ident, START - timedelta(minutes=n + 1), f"late{n:03d}")
    return (time.perf_counter() - started) * 1000 / late


def bench_identity_core(count: int = 200_000) -> list[Result]:
    """Events/s through the identity core beside the decode-only rate of the same events, then
    `bench_identity_authority`."""
    generated = events(count)
    frags = [orjson.dumps(e) for e in generated]
    messages = [envelope.encode(frags[i : i + 500], None) for i in range(0, count, 500)]
    started = time.perf_counter()
    decoded = [envelope.decode(m).events for m in messages]
    decode_rate = count / (time.perf_counter() - started)

    core_s, graph = _run(decoded)
    shuffled = [e for batch in decoded for e in batch]
    random.Random(5).shuffle(shuffled)
    shuffled_s, again = _run([shuffled[i : i + 500] for i in range(0, count, 500)])
    assert again.persons() == graph.persons(), "arrival order changed the persons"
    return [
        Result("decode only (orjson, 500-event envelopes)", decode_rate, "events/s", None),
        Result(
            "identity core: stitch, ~15% linking events",
            count / core_s,
            "events/s",
            decode_rate,
            ">= 200,000 events/s",
        ),
        Result(
            "identity core: same events shuffled (late links)",
            count / shuffled_s,
            "events/s",
            decode_rate,
        ),
        Result(
            "identity core: late link, device shared by 1,000 customers",
            late_link_into_shared_device(),
            "ms/link",
            None,
        ),
        *bench_identity_authority(),
    ]


def bench_identity_authority(count: int = 500_000, runs: int = 3) -> list[Result]:
    """The stage's two halves without a broker, on the stage bench's events: routing every
    event (events/s), and the authority deciding what routing sends it (link events/s), each
    the best of `runs` with a fresh router or authority. Their sum is the CPU the stage needs
    before faust and Kafka add theirs."""
    rules = IdentityRules()
    generated = events(count, seed=23)  # as `bench_identity_stage`
    route_s = decide_s = float("inf")
    sent: list[dict[str, Any]] = []
    batches = [generated[i : i + 500] for i in range(0, count, 500)]
    for _ in range(runs):
        stamp = Router(rules, {}, 8).stamp
        sent = []
        started = time.perf_counter()
        for batch in batches:  # the stage's envelopes: one `stamp` per message
            sent += stamp(batch, 0)[1]
        route_s = min(route_s, time.perf_counter() - started)
    parse = datetime.fromisoformat  # the stage parses too, outside the authority
    links = [(e["identity"], parse(e["occurred_at"]), e["event_id"]) for e in sent]
    for _ in range(runs):
        decide = Authority(rules).decide
        started = time.perf_counter()
        for identity, occurred_at, event_id in links:
            decide(identity, occurred_at, event_id)
        decide_s = min(decide_s, time.perf_counter() - started)
    share = len(links) / count
    return [
        Result("routing core: route + pick links, no broker", count / route_s, "events/s", None),
        Result(
            f"identity authority: decide ({share:.1%} of events link)",
            len(links) / decide_s,
            "links/s",
            None,
        ),
        Result(
            "identity stage core: route + decide, no broker",
            count / (route_s + decide_s),
            "events/s",
            None,
        ),
    ]


def bench_identity_stage(settings: Any, log: Any, count: int = 500_000) -> list[Result]:
    """The identity stage in faust on `touchpoints` (the events above, in 500-event envelopes),
    its links persisted in a changelog table, beside raw consume + decode of the same topic.
    Routing is timed between its first and last offset commit. With a backlog faust hands the
    authority its links only after routing drained `touchpoints`, so the whole stage's figure
    is all events over the time from routing's first commit to the authority's last: the rate
    one worker process sustains doing both."""
    from schemas.topics import Topics
    from tests.integration.helpers import free_port

    from . import pipeline

    topics = Topics.from_settings(settings.topics)
    generated = events(count, seed=23)
    fragments = []
    for event in generated:
        ident = event["identity"]
        key = next(f"{n}:{ident[n]}" for n in IDENTIFIER_FIELDS if ident[n] is not None)
        fragments.append((key, orjson.dumps(event)))
    messages = pipeline.publish(settings, topics.touchpoints, fragments)
    raw = pipeline.raw_consume(settings, topics.touchpoints, messages)
    whole: list[float] = []
    port = free_port()
    lag: list[float] = []

    def authority_done(proc: Any, first_commit: float) -> None:
        from confluent_kafka import Consumer, TopicPartition

        routed = time.perf_counter()
        group = settings.topics.group("identity")
        probe = Consumer(
            {
                **settings.kafka.as_librdkafka_dict(),
                "group.id": group,
                "isolation.level": "read_uncommitted",
            }
        )
        links = TopicPartition(topics.identity_links, 0)
        try:
            # Routing is done, so the links log is complete: it ends with the commit marker
            # of its last transaction, which no consumer commits past.
            end = probe.get_watermark_offsets(links, timeout=10.0)[1] - 1
            while probe.committed([links], timeout=10.0)[0].offset < end:
                if proc.poll() is not None:
                    raise RuntimeError(f"identity exited {proc.returncode}")
                time.sleep(0.05)
        finally:
            probe.close()
        whole.extend([time.perf_counter() - first_commit, time.perf_counter() - routed])
        lag.append(_mean_replica_lag(port))

    routing = pipeline.stage_rate(
        settings,
        "identity",
        topics.touchpoints,
        log,
        "faust identity stage: route + stitched + links",
        then=authority_done,
        env={"JOURNEYS_PROCESSOR__METRICS_PORT": str(port)},
    )
    routing.baseline, routing.target = raw.value, ">= 50,000 events/s"
    return [
        raw,
        routing,
        Result(
            "identity stage incl. authority: first commit to all links decided",
            count / whole[0],
            "events/s",
            raw.value,
            ">= 50,000 events/s",
        ),
        Result("identity authority: still deciding after routing ended", whole[1], "seconds", None),
        Result("identity map replica: mean lag, publish to applied", lag[0] * 1000, "ms", None),
    ]


def _mean_replica_lag(port: int) -> float:
    """Seconds, from the worker's Prometheus histogram of map updates applied by its replica."""
    from urllib.request import urlopen

    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("journeys_identity_replica_lag_seconds_")
    }
    count = values.get("journeys_identity_replica_lag_seconds_count", 0.0)
    return values.get("journeys_identity_replica_lag_seconds_sum", 0.0) / count if count else 0.0
