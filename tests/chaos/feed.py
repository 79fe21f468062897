"""The chaos suite's input: simulated customers for the publisher, Segment-style calls for the
HTTP collector and export files for the contact-center and POS adapters, every event
numbered, and the driver that sends them while a fault is injected.

The same input feeds the fault-free reference run and every fault run, so their outcomes must
be equal; `sent` is worked out from the input alone (the adapters' own mapping derives the
file's event ids without publishing), never from what a run stored."""

from __future__ import annotations

import bisect
import csv
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from producers.adapters.records import file_format, read_records
from producers.adapters.runner import Kind, ingest_records, plan_for, run_ingest
from producers.pii import PiiHasher
from producers.simulator.config import SimConfig
from producers.simulator.engine import SimEvent, Simulation
from producers.simulator.runner import publish_events, send_heartbeats
from schemas.settings import Settings
from schemas.touchpoint import Touchpoint
from tests.integration.helpers import ROOT, basic_auth, post, wait_for

MAPPINGS = ROOT / "deploy" / "mappings"
MAPPING: dict[Kind, str] = {"call-center": "contact_center.toml", "store": "pos.toml"}
WRITE_KEY = "wk_chaos_web"
SOURCES = {WRITE_KEY: {"name": "web-shop", "channel": "web"}}
EVENTS_PER_CUSTOMER = 3.25  # what the simulator gives for two days (measured, roughly)
# Each adapter exports an hour of event time once the stream has passed it: records up to an
# hour late (the pipeline keeps friction windows open for three, pipeline.py), so no record is
# near a lateness limit and how late one happened to arrive never decides an outcome.
SPAN = timedelta(hours=1)
ADAPTER_SHARE = 0.03 / 0.85 / 2  # records per adapter for each simulated event of the span
STEPS = 200  # the publisher's steps, so the collector's batches go out close to their time
NAMESPACE = uuid.UUID("5b1f0c6e-7c1e-4f3a-9a51-6c0a0c4a5e21")


@dataclass(frozen=True)
class Input:
    """Everything one run sends, and how many distinct events that is."""

    simulated: list[SimEvent]
    calls: list[list[dict[str, Any]]]  # collector batches; some sent twice (client retries)
    calls_after: list[int]  # each batch goes once this many simulated events are sent
    retried: frozenset[int]  # indexes of the batches sent a second time
    # Export files in time order, each with the number of simulated events sent before it.
    exports: list[tuple[int, Kind, Path]]
    adapter_event_ids: frozenset[str]
    closes_at_ms: int

    @property
    def sent(self) -> int:
        """Distinct valid events: what `touchpoints` must hold, each once."""
        calls = {c["messageId"] for batch in self.calls for c in batch}
        return len(self.simulated) + len(calls) + len(self.adapter_event_ids)


def build(total: int, folder: Path, settings: Settings, seed: int = 41) -> Input:
    """About `total` events: 85% simulated (publisher), 12% collector calls, the rest from
    adapter files. The calls take the time of the simulated event they go out after; the
    files' records the times of an hour of the stream, sent once it is published: every
    entrance runs in step with the stream's event time, none more than an hour late, none
    ahead of it."""
    customers = max(1, round(total * 0.85 / EVENTS_PER_CUSTOMER))
    config = SimConfig(customers=customers, days=2, seed=seed)
    simulated, truth = Simulation(config, PiiHasher(settings.pii)).run()
    times = [e.occurred_at for e in simulated]
    assert times == sorted(times), "the simulator's events come in time order"
    numbered = _numbered(simulated)
    calls, calls_after = _collector_batches(round(total * 0.12), times)
    retried = frozenset(range(0, len(calls), 100))  # 1% of batches, sent again whole
    folder.mkdir(parents=True, exist_ok=True)
    exports: list[tuple[int, Kind, Path]] = []
    ids: set[str] = set()
    start, k = 0, 0
    while start < len(times):
        ends = times[start].replace(minute=0, second=0, microsecond=0) + SPAN
        end = bisect.bisect_left(times, ends, lo=start)
        part = times[start:end]
        records = max(1, round(len(part) * ADAPTER_SHARE))
        contacts = _contacts_file(folder / f"contacts-{k}.csv", k, max(1, records // 3), part)
        sales = _sales_file(folder / f"sales-{k}.jsonl", k, records, part)
        exports += [(end, "call-center", contacts), (end, "store", sales)]
        ids |= _adapter_ids(settings, "call-center", contacts)
        ids |= _adapter_ids(settings, "store", sales)
        start, k = end, k + 1
    closes = int(truth.closes_at.timestamp() * 1000)
    return Input(numbered, calls, calls_after, retried, exports, frozenset(ids), closes)


def _numbered(events: list[SimEvent]) -> list[SimEvent]:
    """Each simulated event carries its sequence number (properties.seq)."""
    for n, sim in enumerate(events):
        sim.event.setdefault("properties", {})["seq"] = n
    return events


def _time_of(n: int, count: int, times: list[datetime]) -> datetime:
    """The time of the simulated event at the same place in its stream as item n of count."""
    return times[min(len(times) - 1, n * len(times) // max(count, 1))]


def _collector_batches(
    count: int, times: list[datetime]
) -> tuple[list[list[dict[str, Any]]], list[int]]:
    """`count` track and page calls of 1,000 visitors, 50 to a batch, each with a messageId
    (its event id) made from its sequence number; and for each batch, how many simulated
    events go out before it (up to the one whose time its calls carry)."""
    calls, after = [], []
    for n in range(count):
        place = min(len(times) - 1, (n - n % 50) * len(times) // max(count, 1))
        if n % 50 == 0:
            after.append(place + 1)  # sent once the stream has passed it, never ahead
        call: dict[str, Any] = {
            "type": "page" if n % 3 else "track",
            "anonymousId": f"chaos-visitor-{n % 1_000}",
            "messageId": str(uuid.uuid5(NAMESPACE, f"call-{n}")),
            "timestamp": times[place].isoformat().replace("+00:00", "Z"),
            "properties": {"seq": n, "path": f"/chaos/{n % 7}"},
        }
        if call["type"] == "track":
            call["event"] = "Product Viewed"
        calls.append(call)
    return [calls[i : i + 50] for i in range(0, len(calls), 50)], after


def _contacts_file(path: Path, part: int, count: int, times: list[datetime]) -> Path:
    """A contact-center export: answered contacts of customers known only to the center, in
    London time as the mapping reads it."""
    fmt, london = "%d/%m/%Y %H:%M:%S", ZoneInfo("Europe/London")
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                *("ContactID", "Queue", "QueueStart", "AnswerTime", "EndTime", "AgentID"),
                *("WrapUpCode", "Transfers", "ANI", "Email", "CustomerNo", "WaitSec", "HandleSec"),
            ]
        )
        for n in range(count):
            queued = _time_of(n, count, times).astimezone(london)
            answered, ended = queued + timedelta(seconds=90), queued + timedelta(seconds=400)
            out.writerow(
                [
                    *(f"C-CHAOS-{part}-{n:06d}", "billing", queued.strftime(fmt)),
                    *(answered.strftime(fmt), ended.strftime(fmt), "A101", "RES", "0", "", ""),
                    *(f"CUST-CHAOS-{n % 500}", "90", "310"),
                ]
            )
    return path


def _sales_file(path: Path, part: int, count: int, times: list[datetime]) -> Path:
    """A till export: sales to loyalty-card holders, times with their own offset."""
    with open(path, "wb") as fh:
        for n in range(count):
            sale = {
                "txn_id": f"CHAOS-{part}-{n:06d}",
                "store": "017",
                "till": "02",
                "ts": _time_of(n, count, times).isoformat(),
                "kind": "SALE",
                "total": 10.5,
                "lines": [{"sku": f"SKU-{n % 90}", "qty": 1, "price": 10.5}],
                "customer": {"loyalty_card": f"LCHAOS{n % 400:04d}"},
            }
            fh.write(orjson.dumps(sale) + b"\n")
    return path


def _adapter_ids(settings: Settings, kind: Kind, path: Path) -> set[str]:
    """The event ids `journeys ingest KIND PATH` will publish, derived by the adapter's own
    mapping without publishing (a line it would refuse fails the build: none should)."""
    plan = plan_for(kind, MAPPINGS / MAPPING[kind], PiiHasher(settings.pii))
    ids: list[str] = []
    refused: list[str] = []

    def keep(event: Touchpoint) -> None:
        ids.append(str(event.event_id))

    with open(path, encoding=plan.mapping.file.encoding, newline="") as fh:
        rows = read_records(
            fh, file_format(path, plan.mapping.file), plan.mapping.file, plan.columns
        )
        ingest_records(rows, plan.derive, keep, lambda line, why: refused.append(f"{line}: {why}"))
    assert not refused, refused[:3]
    assert len(ids) == len(set(ids))
    return set(ids)


# -- the driver ---------------------------------------------------------------------------


@dataclass
class Driver:
    """Sends an `Input` through the three entrances in turn (the publisher at `rate` events
    a second, each collector batch and export file once the stream has passed its time),
    never ahead of the stream's event time; then closes the simulated time with watermark
    heartbeats. `published` tells how far it got; `hold_back` slows it down until `release`."""

    settings: Settings
    feed: Input
    collector_port: int
    log: Path
    rate: float
    published: float = 0.0  # share of the simulated events handed to the publisher
    errors: list[BaseException] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _released: threading.Event = field(default_factory=threading.Event)  # clear: held back
    _gap: float = 0.0
    _until: float = 1.0

    def __post_init__(self) -> None:
        self._released.set()

    def hold_back(self, gap: float, until: float) -> None:
        """Until `release`: one step of the publisher every `gap` seconds, and none past the
        share `until` of the simulated events."""
        self._gap, self._until = gap, until
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-driver", daemon=True)
        self._thread.start()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float = 1_800.0) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the driver did not finish"
        if self.errors:
            raise self.errors[0]

    def wait_for_share(self, share: float, watch: Callable[[], None]) -> None:
        """Block until `share` of the simulated events are handed over (calling `watch`)."""
        while self.published < share and self.running():
            watch()
            time.sleep(0.2)

    def _run(self) -> None:
        # One thread sends all three entrances, each in its turn, so what reaches `raw` comes
        # in the same order in every run whatever the machine's load. (With the collector in
        # a thread of its own, a second behind under load made its calls 40 simulated minutes
        # late: the publisher sends two days in seconds.)
        try:
            feed, total = self.feed, len(self.feed.simulated)
            due: list[tuple[int, int, Callable[[], None]]] = [
                (after, 0, partial(self._send_batch, n)) for n, after in enumerate(feed.calls_after)
            ]
            due += [
                (after, 1, partial(self._ingest, kind, path)) for after, kind, path in feed.exports
            ]
            due.sort(key=lambda d: (d[0], d[1]))
            step, sent, waiting = max(1, total // STEPS), 0, iter(due)
            pending = next(waiting, None)
            while sent < total or pending is not None:
                if not self._released.is_set():
                    if sent >= self._until * total:
                        self._released.wait()
                    else:
                        time.sleep(self._gap)
                upto = min(total, sent + step)
                if pending is not None:
                    upto = min(upto, max(pending[0], sent))
                if upto > sent:
                    publish_events(self.settings, feed.simulated[sent:upto], self.rate)
                    sent = upto
                    self.published = sent / total
                while pending is not None and pending[0] <= sent:
                    pending[2]()
                    pending = next(waiting, None)
            send_heartbeats(self.settings, feed.closes_at_ms)
        except BaseException as exc:  # handed to the test by join()
            self.errors.append(exc)

    def _ingest(self, kind: Kind, path: Path) -> None:
        """`journeys ingest KIND PATH`, in this process (a new one per file costs a core)."""
        with open(self.log, "a") as err:
            assert run_ingest(self.settings, kind, path, MAPPINGS / MAPPING[kind], err=err) == 0

    def _send_batch(self, n: int) -> None:
        """Collector batch n; a refused one (503 while Kafka is away) is sent again, as an
        SDK would, with the same messageIds."""
        headers = {"Authorization": basic_auth(WRITE_KEY), "Content-Type": "application/json"}
        for _ in range(2 if n in self.feed.retried else 1):
            self._post(self.feed.calls[n], headers)

    def _post(self, batch: list[dict[str, Any]], headers: dict[str, str]) -> None:
        def accepted() -> bool:
            try:
                status, _body = post(self.collector_port, "/v1/batch", {"batch": batch}, headers)
            except OSError:
                return False
            assert status in (200, 503), status
            return status == 200

        wait_for(accepted, 300, "the collector to accept a batch")
