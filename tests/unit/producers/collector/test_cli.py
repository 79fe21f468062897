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
    assert (args.host, args.port, args.workers, args.worker) == ("0.0.0.0", 9000, None, False)
    args = _parser().parse_args(["collector", "--workers", "2"])
    assert args.workers == 2


def test_collector_limits_have_safe_defaults_and_refuse_nonsense() -> None:
    c = CollectorSettings()
    assert (c.max_header_bytes, c.idle_timeout_seconds, c.request_timeout_seconds) == (
        16_384,
        5.0,
        10.0,
    )
    assert (c.max_connections, c.workers, c.admin_port) == (2_000, 1, 9468)
    for wrong in ({"workers": 0}, {"max_connections": 0}, {"idle_timeout_seconds": 0}):
        with pytest.raises(ValidationError):
            CollectorSettings.model_validate(wrong)


def test_collector_settings_defaults_and_errors() -> None:
    c = CollectorSettings()
    assert (c.max_batch_bytes, c.max_event_bytes, c.cors_origins) == (500_000, 32_768, ["*"])
    with pytest.raises(ValidationError, match="channel"):
        CollectorSettings(sources={"k": {"name": "x", "channel": "fax"}})
    with pytest.raises(ValidationError, match="extra"):
        CollectorSettings(sources={"k": {"name": "x", "channel": "web", "team": "y"}})
