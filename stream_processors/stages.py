"""The pipeline's stages by name, as `journeys process STAGE` runs them."""

from __future__ import annotations

from stream_processors.friction import stage as friction
from stream_processors.identity import stage as identity
from stream_processors.ingest import stage as ingest
from stream_processors.journeys import stage as journeys
from stream_processors.runtime.worker import StageBuild

STAGES: dict[str, StageBuild] = {
    "ingest": ingest.build,
    "identity": identity.build,
    "journeys": journeys.build,
    "friction": friction.build,
}
