"""One run of the whole pipeline as OS processes (the four stages, the sink, the collector,
and `journeys db serve` when the sink writes to a server DSN), each started, SIGKILLed and
stopped by its own pid; and the measure of how long a restarted part takes to process
again (its group's committed offsets move)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.kafka_admin import committed_offsets
from schemas.settings import Settings
from sinks.clickhouse import reader_dsn, session
from tests.integration.helpers import (
    drain,
    free_port,
    journeys,
    kill,
    reap,
    stage_topics,
    start_collector,
    stop,
    wait_for,
)

from .feed import SOURCES
from .results import Snapshot, snapshot

STAGES = ("ingest", "identity", "journeys", "friction")
# The adapters' exports run up to an hour of event time behind the stream (feed.py): journeys
# and friction windows stay correctable far longer than that, so how late an event happened
# to arrive in a run never decides an outcome.
ENV = {
    "JOURNEYS_JOURNEYS__LATE_TOLERANCE": "P1D",
    "JOURNEYS_FRICTION__ALLOWED_LATENESS": "PT3H",
}


@dataclass
class Pipeline:
    settings: Settings
    folder: Path
    journeys_workers: int = 1
    serve_port: int | None = None  # the sink writes through `db serve` on this port
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    collector_port: int = 0

    @property
    def log(self) -> Path:
        return self.folder / "pipeline.log"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.serve_port is not None:
            self.serve()
        for name in self.workers():
            self.launch(name)
        self.launch("sink")
        self.collector_port = free_port()
        self.procs["collector"] = start_collector(
            self.settings, self.collector_port, SOURCES, self.log
        )

    def workers(self) -> list[str]:
        names = ["ingest", "identity"]
        names += [f"journeys-{n}" for n in range(self.journeys_workers)]
        return [*names, "friction"]

    def launch(self, name: str, **extra: str) -> subprocess.Popen[bytes]:
        """Start (or start again) `name`: a stage worker keeps its worker id across restarts,
        so the new one fences what the killed one left open."""
        if name == "sink":
            proc = journeys(self.settings, "sink", log=self.log, **extra)
        else:
            stage, _, n = name.partition("-")
            worker = f"{self.settings.processor.worker_id}-{stage}{n}"
            env = {"JOURNEYS_PROCESSOR__WORKER_ID": worker, **ENV, **extra}
            proc = journeys(self.settings, "process", stage, log=self.log, **env)
        self.procs[name] = proc
        return proc

    def serve(self) -> None:
        assert self.serve_port is not None
        log = self.folder / "serve.log"
        proc = journeys(self.settings, "db", "serve", "--port", str(self.serve_port), log=log)
        self.procs["serve"] = proc
        at = f"127.0.0.1:{self.serve_port}"  # after the user: http://default@127.0.0.1:PORT
        wait_for(lambda: served_at(self.settings).endswith(at), 60, "db serve", [proc], log)

    def kill(self, name: str) -> None:
        kill(self.procs[name])

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for n, p in self.procs.items() if n != "serve"]

    def check_alive(self) -> None:
        """Fail now (with the log) if a part of the pipeline has died on its own."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited {proc.returncode}\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])

    def drain(self) -> None:
        groups = stage_topics(self.settings, *STAGES, "sink")
        drain(self.settings, groups, self.running(), self.log, timeout=900)

    def snapshot(self) -> Snapshot:
        """What this run left in ClickHouse, read through the HTTP interface of the process
        that holds the folder (chDB opens one folder per process, and runs go side by side)."""
        url = served_at(self.settings)
        assert url.startswith("http://"), url
        with session(url) as ch:
            return snapshot(ch)

    def stop(self) -> None:
        """Everything stopped cleanly (SIGTERM, exit 0), the sink last."""
        collector = self.procs.pop("collector", None)
        if collector is not None:
            collector.terminate()
            collector.wait(30)
        order = [n for n in self.procs if n not in ("sink", "serve")]
        stop([self.procs.pop(n) for n in order], self.log)
        stop([self.procs.pop("sink")], self.log)
        if "serve" in self.procs:
            stop([self.procs.pop("serve")], self.folder / "serve.log")

    def reap(self) -> None:
        for proc in self.procs.values():
            reap(proc)


def served_at(settings: Settings) -> str:
    return reader_dsn(settings.clickhouse_dsn)


def progress(settings: Settings, group_of: str) -> int:
    """Sum of the committed offsets of a stage's (or the sink's) group over its inputs."""
    topics = stage_topics(settings, group_of)[group_of]
    group = settings.topics.group(group_of)
    return sum(max(o, 0) for t in topics for o in committed_offsets(settings, group, t).values())


def resume_seconds(
    settings: Settings, group_of: str, since: float, watch: Callable[[], None], limit: float = 600
) -> float:
    """Seconds from `since` (a monotonic restart time) until `group_of` commits past where it
    stood when this was called."""
    before = progress(settings, group_of)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if progress(settings, group_of) > before:
                return time.monotonic() - since
        except Exception:  # the coordinator is not back yet
            pass
        watch()
        time.sleep(0.2)
    raise AssertionError(f"{group_of} did not commit again within {limit:.0f}s")
