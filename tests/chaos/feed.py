"""The chaos suite's input: simulated customers for the publisher, Segment-style calls for the
HTTP collector and export files for the contact-center and POS adapters, every event
numbered, and the driver that sends them while a fault is injected.

The same input feeds the fault-free reference run and every fault run, so their outcomes must
be equal; `sent` is worked out from the input alone (the adapters' own mapping derives the
file's event ids without publishing), never from what a run stored."""

from __future__ import annotations

import csv
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
EXPORTS = 25  # export files per adapter, one per 25th of the simulated stream
NAMESPACE = uuid.UUID("5b1f0c6e-7c1e-4f3a-9a51-6c0a0c4a5e21")


@dataclass(frozen=True)
class Input:
    """Everything one run sends, and how many distinct events that is."""

    simulated: list[SimEvent]
    calls: list[list[dict[str, Any]]]  # collector batches; some sent twice (client retries)
    retried: frozenset[int]  # indexes of the batches sent a second time
    exports: list[tuple[Kind, Path]]  # export files in time order, one per tenth of the feed
    adapter_event_ids: frozenset[str]
    closes_at_ms: int

    @property
    def sent(self) -> int:
        """Distinct valid events: what `touchpoints` must hold, each once."""
        calls = {c["messageId"] for batch in self.calls for c in batch}
        return len(self.simulated) + len(calls) + len(self.adapter_event_ids)


def build(total: int, folder: Path, settings: Settings, seed: int = 41) -> Input:
    """About `total` events: 85% simulated (publisher), 12% collector calls, the rest from
    adapter files. The calls and the files' records take the times of the simulated events
    they go out beside, so every entrance runs in step with the stream's event time (none is
    late by more than a 25th of the feed, none ahead of it)."""
    customers = max(1, round(total * 0.85 / EVENTS_PER_CUSTOMER))
    config = SimConfig(customers=customers, days=2, seed=seed)
    simulated, truth = Simulation(config, PiiHasher(settings.pii)).run()
    times = [e.occurred_at for e in simulated]
    numbered = _numbered(simulated)
    calls = _collector_batches(round(total * 0.12), times)
    retried = frozenset(range(0, len(calls), 100))  # 1% of batches, sent again whole
    folder.mkdir(parents=True, exist_ok=True)
    per_file = max(3, round(total * 0.03 / 2 / EXPORTS))  # records in each export file
    exports: list[tuple[Kind, Path]] = []
    ids: set[str] = set()
    for k in range(EXPORTS):
        part = times[k * len(times) // EXPORTS : (k + 1) * len(times) // EXPORTS]
        contacts = _contacts_file(folder / f"contacts-{k}.csv", k, per_file // 3 or 1, part)
        sales = _sales_file(folder / f"sales-{k}.jsonl", k, per_file, part)
        exports += [("call-center", contacts), ("store", sales)]
        ids |= _adapter_ids(settings, "call-center", contacts)
        ids |= _adapter_ids(settings, "store", sales)
    closes = int(truth.closes_at.timestamp() * 1000)
    return Input(numbered, calls, retried, exports, frozenset(ids), closes)


def _numbered(events: list[SimEvent]) -> list[SimEvent]:
    """Each simulated event carries its sequence number (properties.seq)."""
    for n, sim in enumerate(events):
        sim.event.setdefault("properties", {})["seq"] = n
    return events


def _time_of(n: int, count: int, times: list[datetime]) -> datetime:
    """The time of the simulated event at the same place in its stream as item n of count."""
    return times[min(len(times) - 1, n * len(times) // max(count, 1))]


def _collector_batches(count: int, times: list[datetime]) -> list[list[dict[str, Any]]]:
    """`count` track and page calls of 1,000 visitors, 50 to a batch, each with a messageId
    (its event id) made from its sequence number."""
    calls = []
    for n in range(count):
        # The time of its batch's first call: sent once the stream has passed it, never ahead.
        at = _time_of(n - n % 50, count, times).isoformat().replace("+00:00", "Z")
        call: dict[str, Any] = {
            "type": "page" if n % 3 else "track",
            "anonymousId": f"chaos-visitor-{n % 1_000}",
            "messageId": str(uuid.uuid5(NAMESPACE, f"call-{n}")),
            "timestamp": at,
            "properties": {"seq": n, "path": f"/chaos/{n % 7}"},
        }
        if call["type"] == "track":
            call["event"] = "Product Viewed"
        calls.append(call)
    return [calls[i : i + 50] for i in range(0, len(calls), 50)]


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
    """Sends an `Input` through the three entrances at once (the publisher at `rate` events
    a second, the collector's batches alongside, each part's export files once that part is
    published), never ahead of the stream's event time; then closes the simulated time with
    watermark heartbeats. `published` tells how far it got."""

    settings: Settings
    feed: Input
    collector_port: int
    log: Path
    rate: float
    published: float = 0.0  # share of the simulated events handed to the publisher
    errors: list[BaseException] = field(default_factory=list)
    _thread: threading.Thread | None = None

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
        try:
            collector = threading.Thread(target=self._send_calls, daemon=True)
            collector.start()
            exports = iter(self.feed.exports)
            sent = 0
            step = max(1, len(self.feed.simulated) // (EXPORTS * 2))
            for i in range(0, len(self.feed.simulated), step):
                publish_events(self.settings, self.feed.simulated[i : i + step], self.rate)
                self.published = min(1.0, (i + step) / len(self.feed.simulated))
                # Each part's exports once the publisher has sent that part of the stream.
                while sent < 2 * int(EXPORTS * self.published + 1e-9):
                    self._ingest(*next(exports))
                    sent += 1
            collector.join()
            send_heartbeats(self.settings, self.feed.closes_at_ms)
        except BaseException as exc:  # handed to the test by join()
            self.errors.append(exc)

    def _ingest(self, kind: Kind, path: Path) -> None:
        """`journeys ingest KIND PATH`, in this process (a new one per file costs a core)."""
        with open(self.log, "a") as err:
            assert run_ingest(self.settings, kind, path, MAPPINGS / MAPPING[kind], err=err) == 0

    def _send_calls(self) -> None:
        """Batches paced with the publisher; a refused one (503 while Kafka is away) is sent
        again, as an SDK would, with the same messageIds."""
        headers = {"Authorization": basic_auth(WRITE_KEY), "Content-Type": "application/json"}
        batches = self.feed.calls
        for n, batch in enumerate(batches):
            while self.published < (n + 1) / len(batches) and self.published < 1.0:
                time.sleep(0.05)
            for _ in range(2 if n in self.feed.retried else 1):
                self._post(batch, headers)

    def _post(self, batch: list[dict[str, Any]], headers: dict[str, str]) -> None:
        def accepted() -> bool:
            try:
                status, _body = post(self.collector_port, "/v1/batch", {"batch": batch}, headers)
            except OSError:
                return False
            assert status in (200, 503), status
            return status == 200

        wait_for(accepted, 300, "the collector to accept a batch")
