"""`journeys ui` refuses an address reachable from other machines without a token."""

from __future__ import annotations

import pytest

from deploy.cli import main


def test_another_address_needs_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("JOURNEYS_UI__TOKEN", raising=False)
    assert main(["ui", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "0.0.0.0" in err and "JOURNEYS_UI__TOKEN" in err
