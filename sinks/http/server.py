"""Serving an embedded folder's HTTP interface: standalone (`journeys db serve`) or beside the
sink in a thread of its own. Either way the folder's announcement says where it is served."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from schemas.settings import ClickHouseHttpSettings
from sinks.http.app import ClickHouseHttpApp
from sinks.http.discovery import announce, folder_of, withdraw
from sinks.http.engine import Engine

log = logging.getLogger(__name__)


class HttpInterface:
    """The interface of one folder, bound to its socket, served in a thread of its own from
    `start()` to `stop()`. (uvicorn re-raises SIGTERM in its main thread after shutting
    down, which would skip withdrawing the announcement: the caller handles signals.)"""

    def __init__(self, folder: Path, settings: ClickHouseHttpSettings) -> None:
        self.folder = folder
        self._settings = settings
        self._engine = Engine(str(folder), settings.session_timeout_seconds)
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((settings.host, settings.port))
        except OSError as exc:
            self._socket.close()
            self._engine.close()
            raise OSError(
                f"cannot serve ClickHouse's HTTP interface on {settings.host}:{settings.port} "
                f"({exc.strerror}); set JOURNEYS_CLICKHOUSE__HTTP__PORT"
            ) from None
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            ClickHouseHttpApp(self._engine, settings),
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._announcement: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self._settings.host}:{self.port}"

    def _run(self) -> None:
        client = self._settings.user(self._settings.client_user)
        password = client.password.get_secret_value() if client else ""
        self._announcement = announce(
            self.folder, self._settings.host, self.port, self._settings.client_user, password
        )
        log.info("clickhouse http: serving %s at %s", self.folder, self.url)
        try:
            self._server.run(sockets=[self._socket])
        finally:
            withdraw(self._announcement)
            self._engine.close()
            log.info("clickhouse http: stopped serving %s", self.folder)

    def start(self) -> HttpInterface:
        self._thread = threading.Thread(target=self._run, name="clickhouse-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the HTTP interface did not start on {self.url}")
            time.sleep(0.02)
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)


@contextmanager
def serving(dsn: str, settings: ClickHouseHttpSettings) -> Iterator[HttpInterface | None]:
    """Serve the embedded folder of `dsn` while the block runs, when settings say to (a server
    DSN needs no help). A port already taken is logged and the block runs unserved: the sink
    keeps writing, and readers are told the folder is busy."""
    folder = folder_of(dsn)
    if folder is None or not settings.serve:
        yield None
        return
    try:
        interface = HttpInterface(folder, settings).start()
    except OSError as exc:
        log.warning("clickhouse http: %s", exc)
        yield None
        return
    try:
        yield interface
    finally:
        interface.stop()
