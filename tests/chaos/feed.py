"""The chaos suite's input: simulated customers for the publisher, Segment-style calls for the
HTTP collector and export files for the contact-center and POS adapters, every event
numbered, and the driver that sends them while a fault is injected.

The same input feeds the fault-free reference run and every fault run, so their outcomes must
be equal; `sent` is worked out from the input alone (the adapters' own mapping derives the
file's event ids without publishing), never from what a run stored."""

from __future__ import annotations

import csv
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from producers.adapters.records import file_format, read_records
from producers.adapters.runner import Kind, ingest_records, plan_for
from producers.pii import PiiHasher
from producers.simulator.config import SimConfig
from producers.simulator.engine import SimEvent, Simulation
from producers.simulator.runner import publish_events, send_heartbeats
from schemas.settings import Settings
from schemas.touchpoint import Touchpoint
from tests.integration.helpers import ROOT, basic_auth, journeys, post, wait_for

MAPPINGS = ROOT / "deploy" / "mappings"
WRITE_KEY = "wk_chaos_web"
SOURCES = {WRITE_KEY: {"name": "web-shop", "channel": "web"}}
EVENTS_PER_CUSTOMER = 3.25  # what the simulator gives for two days (measured, roughly)
NAMESPACE = uuid.UUID("5b1f0c6e-7c1e-4f3a-9a51-6c0a0c4a5e21")


@dataclass(frozen=True)
class Input:
    """Everything one run sends, and how many distinct events that is."""

    simulated: list[SimEvent]
    calls: list[list[dict[str, Any]]]  # collector batches; some sent twice (client retries)
    retried: frozenset[int]  # indexes of the batches sent a second time
    contacts: Path
    sales: Path
    adapter_event_ids: frozenset[str]
    closes_at_ms: int

    @property
    def sent(self) -> int:
        """Distinct valid events: what `touchpoints` must hold, each once."""
        calls = {c["messageId"] for batch in self.calls for c in batch}
        return len(self.simulated) + len(calls) + len(self.adapter_event_ids)


def build(total: int, folder: Path, settings: Settings, seed: int = 41) -> Input:
    """About `total` events: 85% simulated (publisher), 12% collector calls, the rest from
    adapter files; the collector's and adapters' events fall inside the simulated days."""
    customers = max(1, round(total * 0.85 / EVENTS_PER_CUSTOMER))
    config = SimConfig(customers=customers, days=2, seed=seed)
    simulated, truth = Simulation(config, PiiHasher(settings.pii)).run()
    start, end = config.start, config.end
    numbered = _numbered(simulated)
    calls = _collector_batches(round(total * 0.12), start, end)
    retried = frozenset(range(0, len(calls), 100))  # 1% of batches, sent again whole
    folder.mkdir(parents=True, exist_ok=True)
    adapters = max(2, round(total * 0.03))
    contacts = _contacts_file(folder / "contacts.csv", adapters // 6, start, end)
    sales = _sales_file(folder / "sales.jsonl", adapters // 2, start, end)
    ids = _adapter_ids(settings, "call-center", contacts, MAPPINGS / "contact_center.toml")
    ids |= _adapter_ids(settings, "store", sales, MAPPINGS / "pos.toml")
    closes = int(truth.closes_at.timestamp() * 1000)
    return Input(numbered, calls, retried, contacts, sales, frozenset(ids), closes)


def _numbered(events: list[SimEvent]) -> list[SimEvent]:
    """Each simulated event carries its sequence number (properties.seq)."""
    for n, sim in enumerate(events):
        sim.event.setdefault("properties", {})["seq"] = n
    return events


def _spread(n: int, count: int, start: datetime, end: datetime) -> datetime:
    return start + (end - start) * (n + 0.5) / max(count, 1)


def _collector_batches(count: int, start: datetime, end: datetime) -> list[list[dict[str, Any]]]:
    """`count` track and page calls of 1,000 visitors, 50 to a batch, each with a messageId
    (its event id) made from its sequence number."""
    calls = []
    for n in range(count):
        at = _spread(n, count, start, end).isoformat().replace("+00:00", "Z")
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


def _contacts_file(path: Path, count: int, start: datetime, end: datetime) -> Path:
    """A contact-center export: answered contacts of customers known only to the center."""
    fmt = "%d/%m/%Y %H:%M:%S"
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                *("ContactID", "Queue", "QueueStart", "AnswerTime", "EndTime", "AgentID"),
                *("WrapUpCode", "Transfers", "ANI", "Email", "CustomerNo", "WaitSec", "HandleSec"),
            ]
        )
        for n in range(count):
            # London time, as the mapping says: stay clear of the last hour before `end`.
            queued = _spread(n, count, start, end - timedelta(hours=3))
            answered, ended = queued + timedelta(seconds=90), queued + timedelta(seconds=400)
            out.writerow(
                [
                    *(f"C-CHAOS-{n:07d}", "billing", queued.strftime(fmt)),
                    *(answered.strftime(fmt), ended.strftime(fmt), "A101", "RES", "0", "", ""),
                    *(f"CUST-CHAOS-{n % 500}", "90", "310"),
                ]
            )
    return path


def _sales_file(path: Path, count: int, start: datetime, end: datetime) -> Path:
    """A till export: sales to loyalty-card holders, times with their own offset."""
    with open(path, "wb") as fh:
        for n in range(count):
            sale = {
                "txn_id": f"CHAOS-{n:07d}",
                "store": "017",
                "till": "02",
                "ts": _spread(n, count, start, end - timedelta(hours=3)).isoformat(),
                "kind": "SALE",
                "total": 10.5,
                "lines": [{"sku": f"SKU-{n % 90}", "qty": 1, "price": 10.5}],
                "customer": {"loyalty_card": f"LCHAOS{n % 400:04d}"},
            }
            fh.write(orjson.dumps(sale) + b"\n")
    return path


def _adapter_ids(settings: Settings, kind: Kind, path: Path, mapping: Path) -> set[str]:
    """The event ids `journeys ingest KIND PATH` will publish, derived by the adapter's own
    mapping without publishing (a line it would refuse fails the build: none should)."""
    plan = plan_for(kind, mapping, PiiHasher(settings.pii))
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
    a second, the collector's batches alongside, the adapters' files midway), then closes the
    simulated time with watermark heartbeats. `published` tells how far it got."""

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
            adapters: list[subprocess.Popen[bytes]] = []
            step = max(1, len(self.feed.simulated) // 50)
            for i in range(0, len(self.feed.simulated), step):
                publish_events(self.settings, self.feed.simulated[i : i + step], self.rate)
                self.published = min(1.0, (i + step) / len(self.feed.simulated))
                if not adapters and self.published >= 0.5:  # the day's exports, midway
                    adapters = [
                        journeys(self.settings, "ingest", kind, str(path), log=self.log)
                        for kind, path in (
                            ("call-center", self.feed.contacts),
                            ("store", self.feed.sales),
                        )
                    ]
            collector.join()
            for proc in adapters:
                assert proc.wait(600) == 0, self.log.read_text()[-3000:]
            send_heartbeats(self.settings, self.feed.closes_at_ms)
        except BaseException as exc:  # handed to the test by join()
            self.errors.append(exc)

    def _send_calls(self) -> None:
        """Batches paced with the publisher; a refused one (503 while Kafka is away) is sent
        again, as an SDK would, with the same messageIds."""
        headers = {"Authorization": basic_auth(WRITE_KEY), "Content-Type": "application/json"}
        batches = self.feed.calls
        for n, batch in enumerate(batches):
            while self.published < n / len(batches) and self.published < 1.0:
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
