"""One run of the whole pipeline as OS processes (the four stages' workers, the sinks, the
collector, and `journeys db serve` when the sinks write to a server DSN), each started,
SIGKILLed and stopped by its own pid; and the measure of how long a restarted part takes to
process again (its group's committed offsets move)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
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
# and friction windows stay correctable far longer than that, and the late channels' counts
# are judged two hours after their windows close (an hour after the latest export is due),
# so how late an event happened to arrive in a run never decides an outcome.
ENV = {
    "JOURNEYS_JOURNEYS__LATE_TOLERANCE": "P1D",
    "JOURNEYS_FRICTION__ALLOWED_LATENESS": "PT3H",
    "JOURNEYS_FRICTION__DETECTOR__LATE_COUNT_WAIT": "PT2H",
}


@dataclass
class Pipeline:
    """The parts are started by name: a stage's first worker is the stage's name and the
    next ones `<stage>-1`, `<stage>-2`...; so are the sinks (`sink`, `sink-1`)."""

    settings: Settings
    folder: Path
    workers: Mapping[str, int] = field(default_factory=dict)  # per stage; 1 where not given
    sinks: int = 1
    serve_port: int | None = None  # the sinks write through `db serve` on this port
    # Each stage's and the sinks' second and later parts are left for the fault to start.
    joining: bool = False
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    collector_port: int = 0
    served: str | None = None  # the `db serve` DSN, once it answers

    def __post_init__(self) -> None:
        # chDB opens a folder in one process only: a second sink needs a server to write to.
        if self.sinks > 1 and self.serve_port is None:
            raise ValueError("two sinks write through `db serve`: give serve_port")

    @property
    def log(self) -> Path:
        return self.folder / "pipeline.log"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.serve_port is not None:
            self.serve()
        for name in self.parts():
            if name not in self.joiners():
                self.launch(name)
        self.collector_port = free_port()
        self.procs["collector"] = start_collector(
            self.settings, self.collector_port, SOURCES, self.log
        )

    def parts(self) -> list[str]:
        """Every stage worker, then every sink."""
        counts = {**{stage: self.workers.get(stage, 1) for stage in STAGES}, "sink": self.sinks}
        return [
            name
            for part, count in counts.items()
            for name in [part, *(f"{part}-{n}" for n in range(1, count))]
        ]

    def joiners(self) -> list[str]:
        """The parts the fault starts (none unless `joining`)."""
        return [name for name in self.parts() if self.joining and "-" in name]

    def worker_id(self, name: str) -> str:
        """A stage worker's id: the run's, then the stage and its number after the first."""
        stage, _, n = name.partition("-")
        return f"{self.settings.processor.worker_id}-{stage}{n}"

    def launch(self, name: str, **extra: str) -> subprocess.Popen[bytes]:
        """Start (or start again) `name`: a stage worker keeps its worker id across restarts,
        so the new one fences what the killed one left open."""
        if name.partition("-")[0] == "sink":
            # Given the server's DSN outright: a sink that found no live interface would open
            # the folder `db serve` holds.
            dsn = {} if self.served is None else {"JOURNEYS_CLICKHOUSE__DSN": self.served}
            proc = journeys(self.settings, "sink", log=self.log, **{**dsn, **extra})
        else:
            stage = name.partition("-")[0]
            env = {"JOURNEYS_PROCESSOR__WORKER_ID": self.worker_id(name), **ENV, **extra}
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
        self.served = served_at(self.settings)

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
        """Everything stopped cleanly (SIGTERM, exit 0), the sinks last."""
        collector = self.procs.pop("collector", None)
        if collector is not None:
            collector.terminate()
            collector.wait(30)
        sinks = [n for n in self.procs if n.partition("-")[0] == "sink"]
        order = [n for n in self.procs if n not in (*sinks, "serve")]
        stop([self.procs.pop(n) for n in order], self.log)
        stop([self.procs.pop(n) for n in sinks], self.log)
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
