"""Runs one stage as a faust worker process."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import faust
from prometheus_client import start_http_server

from schemas.settings import Settings
from stream_processors.runtime import worker_id
from stream_processors.runtime.app import StageRuntime

log = logging.getLogger(__name__)

# A stage: its faust app and the runtime that owns its sender and state.
StageBuild = Callable[[Settings], tuple[Any, StageRuntime]]

# The stages allocate millions of small, mostly long-lived objects (journeys, hits, dedup
# ids) and free the rest by reference counting; CPython's default thresholds (700, 10, 10)
# then spend most of a stage's time in collections that find nothing. Measured on the
# journeys stage's hot path: 23,000 -> 56,000 events/s (tests/bench, `make bench`).
GC_THRESHOLDS = (100_000, 50, 1_000)
EX_OK = 0
EX_FAILURE = 1  # mode's code for a worker that crashed


class _Worker(faust.Worker):
    """A faust worker that keeps the entry point's log handlers: mode replaces the root
    logger's handlers with its own text format when the worker starts, which turned every
    stage's structured (JSON) lines into plain text and dropped their fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._handlers = list(logging.getLogger().handlers)
        super().__init__(*args, **kwargs)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        if self._handlers:
            logger.handlers[:] = self._handlers
        super().on_setup_root_logger(logger, level)


def run(settings: Settings, stage: str, build: StageBuild) -> None:
    """Run `stage`, made by `build`, until SIGINT or SIGTERM; commits what it processed on the
    way out. `DuplicateWorkerError` when another live worker of the stage has its worker id
    (checked before its transactional producer starts, which would fence that one)."""
    gc.set_threshold(*GC_THRESHOLDS)
    claimed = worker_id.claim(settings, stage)
    processor = settings.processor.model_copy(update={"worker_id": claimed.worker_id})
    settings = settings.model_copy(update={"processor": processor})
    worker_id.refuse_if_running(settings, stage, claimed.worker_id)
    app, runtime = build(settings)
    port = serve_metrics(settings.processor.metrics_port_of(stage))
    log.info(
        "stage starting",
        extra={"stage": stage, "worker_id": claimed.worker_id, "metrics_port": port},
    )
    worker = _Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # a terminal spinner garbles logs and CI output
    code: int | str | None = EX_OK
    try:
        worker.execute_from_commandline()
    except SystemExit as stopped:
        code = stopped.code
    finally:
        runtime.close()
        claimed.release()
        log.info("stage stopped", extra={"stage": stage})
    code = exit_code(code, worker.crash_reason)
    if code != EX_OK:
        # mode ends every run with SystemExit, EX_FAILURE (1) after a crash; swallowing it
        # made a crashed stage exit 0, which a supervisor reads as a clean stop.
        log.critical("stage crashed", extra={"stage": stage, "exit_code": code})
        raise SystemExit(code)


def exit_code(code: int | str | None, crash: BaseException | None) -> int:
    """The process's exit code from mode's SystemExit code and the worker's crash: 0 only for
    a clean stop."""
    if isinstance(code, int) and code != EX_OK:
        return code
    if crash is not None or isinstance(code, str):
        return EX_FAILURE
    return EX_OK


def serve_metrics(port: int | None) -> int | None:
    """Serve Prometheus metrics on `port` (0: any free one); the port serving, or None."""
    if port is None:
        return None
    server, _thread = start_http_server(port)
    return int(server.server_port)
