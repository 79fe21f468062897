"""`journeys collector` explains itself and its settings validate."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deploy.cli import _parser
from schemas.settings import CollectorSettings


def test_collector_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        _parser().parse_args(["collector", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: journeys collector")
    assert "--host" in out and "--port" in out and "JOURNEYS_COLLECTOR__SOURCES" in out


def test_collector_arguments() -> None:
    args = _parser().parse_args(["collector", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.host, args.port) == ("0.0.0.0", 9000)


def test_collector_settings_defaults_and_errors() -> None:
    c = CollectorSettings()
    assert (c.max_batch_bytes, c.max_event_bytes, c.cors_origins) == (500_000, 32_768, ["*"])
    with pytest.raises(ValidationError, match="channel"):
        CollectorSettings(sources={"k": {"name": "x", "channel": "fax"}})
    with pytest.raises(ValidationError, match="extra"):
        CollectorSettings(sources={"k": {"name": "x", "channel": "web", "team": "y"}})
