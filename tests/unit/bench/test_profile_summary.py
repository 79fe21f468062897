"""The profile summary: busy samples shared out by function, waiting threads counted apart."""

from __future__ import annotations

from pathlib import Path

from tests.bench.profile_stage import summarize


def test_shares_are_of_busy_samples_and_waits_are_counted_apart(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "main (a.py:1);handle (b.py:2);dumps (c.py:3) 6\n"
        "main (a.py:1);handle (b.py:2) 2\n"
        "main (a.py:1);commit (d.py:4) 2\n"
        "loop (e.py:1);select (selectors.py:468) 30\n"
    )
    summary = summarize(raw).splitlines()
    assert summary[0] == "10 busy samples, 30 waiting"
    own = summary[summary.index("own time:") + 1 : summary.index("with what it calls:") - 1]
    assert own == [" 60.0%  dumps (c.py:3)", " 20.0%  handle (b.py:2)", " 20.0%  commit (d.py:4)"]
    inclusive = summary[summary.index("with what it calls:") + 1 :]
    assert inclusive[:2] == ["100.0%  main (a.py:1)", " 80.0%  handle (b.py:2)"]
    assert not any("select" in line for line in summary)
