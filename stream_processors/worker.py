"""Runs one stage as a faust worker process."""

from __future__ import annotations

import logging

import faust
from prometheus_client import start_http_server

from schemas.settings import Settings
from stream_processors import counts_stage, identity_stage, ingest_stage, journeys_stage

log = logging.getLogger(__name__)

STAGES = {
    "ingest": ingest_stage.build,
    "identity": identity_stage.build,
    "journeys": journeys_stage.build,
    "counts": counts_stage.build,
}


def run(settings: Settings, stage: str) -> None:
    """Run `stage` until SIGINT or SIGTERM; commits what it processed on the way out."""
    app, runtime = STAGES[stage](settings)
    port = settings.processor.metrics_port
    if port:
        start_http_server(port)
    log.info("stage starting", extra={"stage": stage, "worker_id": settings.processor.worker_id})
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # a terminal spinner garbles logs and CI output
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    finally:
        runtime.close()
        log.info("stage stopped", extra={"stage": stage})
