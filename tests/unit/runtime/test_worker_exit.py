"""A stage that crashed exits non-zero: mode ends every worker run with SystemExit, and the
code of a crash (a changelog record too large for Kafka, in the chaos suite) was swallowed."""

from __future__ import annotations

import pytest

from stream_processors.runtime.worker import EX_FAILURE, EX_OK, exit_code


@pytest.mark.parametrize(
    ("code", "crash", "expected"),
    [
        (EX_OK, None, EX_OK),
        (None, None, EX_OK),
        (EX_FAILURE, None, EX_FAILURE),  # mode's exit after a crash
        (70, None, 70),
        (EX_OK, RuntimeError("MSG_SIZE_TOO_LARGE"), EX_FAILURE),  # crashed, exited "ok"
        ("message", None, EX_FAILURE),
    ],
)
def test_only_a_clean_stop_exits_zero(
    code: int | str | None, crash: BaseException | None, expected: int
) -> None:
    assert exit_code(code, crash) == expected
