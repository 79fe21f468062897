"""A real single-node Apache Kafka broker (KRaft, combined broker and controller) for this
machine, run from the official jars in Maven Central with the machine's Java.

Each named instance has its own ports and folder under `<data_dir>/kafka/<instance>/`, so
`make test` and `make demo` never touch a broker someone else runs. The broker is stopped by
its own process id, read from the instance's pid file.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from schemas.settings import LocalBrokerSettings

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J = HERE / "log4j2.properties"


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


@dataclass
class LocalBroker:
    """One named broker instance and the files that belong to it."""

    settings: LocalBrokerSettings
    data_dir: Path
    # The broker process when this object started it (so it is reaped, not left a zombie).
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def root(self) -> Path:
        return self.data_dir / "kafka" / self.settings.instance

    @property
    def jar_dir(self) -> Path:
        if self.settings.jars_dir is not None:
            return self.settings.jars_dir / self.settings.kafka_version
        return self.data_dir / "kafka-jars" / self.settings.kafka_version

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "server.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.port}"

    # -- jars ---------------------------------------------------------------------------
    def fetch_jars(self) -> Path:
        """Download the broker's jars once; later calls return at once."""
        marker = self.jar_dir / ".complete"
        if marker.exists():
            return self.jar_dir
        if shutil.which("mvn") is None:
            raise BrokerError("Maven (mvn) is not installed; it fetches the Kafka jars")
        self.jar_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={self.jar_dir}",
            "-DincludeScope=runtime",
            f"-Dkafka.version={self.settings.kafka_version}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(f"fetching Kafka jars failed:\n{done.stdout[-2000:]}{done.stderr}")
        marker.touch()
        return self.jar_dir

    # -- lifecycle ----------------------------------------------------------------------
    def running_pid(self) -> int | None:
        """The pid of this instance's live broker, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _is_alive(pid) and str(self._properties_path()) in _cmdline(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self) -> bool:
        """Start the broker and wait until it answers. False if it was already running."""
        if self.running_pid() is not None:
            return False
        jars = self.fetch_jars()
        self._write_properties()
        self._format_storage(jars)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root / "logs" / "stdout.log", "ab") as out:
            proc = subprocess.Popen(
                self._java(jars, "kafka.Kafka", str(self._properties_path())),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._process = proc
        self.pid_file.write_text(str(proc.pid))
        self._wait_ready(proc)
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop this instance's broker by its pid and wait for it. False if none was running."""
        pid = self.running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        if self._process is not None:
            self._process.wait()
            self._process = None
        return True

    def wipe(self) -> None:
        """Delete this instance's data and logs; refuses while its broker runs."""
        if self.running_pid() is not None:
            raise BrokerError(f"broker {self.settings.instance} is running; stop it first")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        for path in (self.log_file, self.root / "logs" / "stdout.log"):
            if path.exists():
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return "(no broker log yet)"

    # -- internals ----------------------------------------------------------------------
    def _properties_path(self) -> Path:
        return self.root / "server.properties"

    def _java(self, jars: Path, main: str, *args: str) -> list[str]:
        heap = self.settings.heap
        return [
            "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.root / 'logs'}",
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp",
            f"{jars}/*",
            main,
            *args,
        ]

    def _write_properties(self) -> None:
        s = self.settings
        self.root.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{s.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.port},CONTROLLER://127.0.0.1:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.root / "data"),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "num.io.threads": "4",
            "num.network.threads": "2",
            "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        }
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        self._properties_path().write_text(text)

    def _format_storage(self, jars: Path) -> None:
        if (self.root / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cmd = self._java(
            jars,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(self._properties_path()),
            "--ignore-formatted",
        )
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_seconds
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": "0"})
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"Kafka broker exited with code {proc.returncode}:\n{self.log_tail()}"
                )
            try:
                admin.list_topics(timeout=1.0)
                return
            except Exception:
                time.sleep(0.3)
        self.stop()
        raise BrokerError(
            f"Kafka broker did not answer on {self.bootstrap} within "
            f"{self.settings.start_timeout_seconds:.0f}s:\n{self.log_tail()}"
        )


def _is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    if state in ("Z", "X"):
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_alive(pid):
            return True
        time.sleep(0.1)
    return not _is_alive(pid)
