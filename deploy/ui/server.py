"""Wiring the page from the settings and serving it with uvicorn (`journeys ui`)."""

from __future__ import annotations

import logging
import socket

import uvicorn

from deploy.ui.answering import Answering
from deploy.ui.app import UiApp
from schemas.settings import Settings, UiSettings

log = logging.getLogger(__name__)


def build_app(settings: Settings) -> UiApp:
    """The ASGI app, reading the deployment's ClickHouse."""
    return UiApp(Answering(settings.clickhouse_dsn), settings.ui.token)


def bind(ui: UiSettings) -> socket.socket:
    """The listening socket, bound here so that port 0 gets a port we can print."""
    family = socket.AF_INET6 if ":" in ui.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((ui.host, ui.port))
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot serve the page on {ui.host}:{ui.port} ({exc.strerror}); "
            "choose --port or set JOURNEYS_UI__PORT"
        ) from None
    return sock


def serve(settings: Settings, sock: socket.socket) -> None:
    """Serve on `sock` until SIGINT or SIGTERM."""
    config = uvicorn.Config(
        build_app(settings),
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])
