"""producers.adapters.runner and `journeys ingest`: whole files, per-line errors, stable ids."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest

from deploy.cli import _parser, main
from producers.adapters.records import BadLine, Record, file_format, read_records
from producers.adapters.runner import IngestSummary, Kind, ingest_records, plan_for
from producers.adapters.touchpoints import event_id
from schemas.touchpoint import Touchpoint
from tests.unit.producers.adapters.builders import EXAMPLES, HASHER, MAPPINGS

SAMPLES: dict[Kind, tuple[Path, Path]] = {
    "call-center": (EXAMPLES / "contacts.csv", MAPPINGS / "contact_center.toml"),
    "store": (EXAMPLES / "pos.jsonl", MAPPINGS / "pos.toml"),
}


def ingest(
    kind: Kind, path: Path | None = None, mapping: Path | None = None
) -> tuple[IngestSummary, list[Touchpoint], list[tuple[int, str]]]:
    sample, default_mapping = SAMPLES[kind]
    path, plan = path or sample, plan_for(kind, mapping or default_mapping, HASHER)
    published: list[Touchpoint] = []
    errors: list[tuple[int, str]] = []
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        rows = read_records(
            fh, file_format(path, plan.mapping.file), plan.mapping.file, plan.columns
        )
        summary = ingest_records(
            rows,
            plan.derive,
            published.append,
            lambda line, reason: errors.append((line, reason)),
            skip_unidentified=plan.mapping.unidentified == "skip",
        )
    return summary, published, errors


def test_the_contact_sample() -> None:
    summary, published, errors = ingest("call-center")
    assert [line for line, _ in errors] == [7, 16, 24, 32, 39, 45]
    assert errors[0] == (7, "contact_id (column 'ContactID'): empty")
    assert errors[2] == (24, "disposition: the value is not in [values.disposition]")
    assert (summary.accepted, summary.rejected, summary.skipped) == (45, 6, 0)
    assert summary.events == len(published) == 152
    assert Counter(e.event_type for e in published) == {
        "contact_queued": 45,
        "contact_answered": 39,
        "contact_abandoned": 6,
        "contact_transferred": 17,
        "contact_ended": 45,
    }


def test_the_pos_sample() -> None:
    summary, published, errors = ingest("store")
    assert [line for line, _ in errors] == [4, 12, 18, 25, 30, 34]
    assert errors[4] == (30, "amount: -5.0 is negative on a purchase")
    assert (summary.accepted, summary.rejected, summary.skipped) == (32, 6, 4)
    assert Counter(e.event_type for e in published) == {"purchase": 27, "return": 5}


@pytest.mark.parametrize("kind", ["call-center", "store"])
def test_ingesting_twice_gives_the_same_ids(kind: Kind) -> None:
    first = [e.event_id for e in ingest(kind)[1]]
    second = [e.event_id for e in ingest(kind)[1]]
    assert first == second and len(set(first)) == len(first)


def test_event_ids_are_uuid5_of_source_record_and_event() -> None:
    # Pinned: if this changes, every re-ingested file would be published as new events.
    assert event_id("genesys-export", "C-20250303-0001", "contact_queued") == UUID(
        "e4e17903-0723-588e-8670-e80c7856a5f7"
    )
    ids = {event_id(s, r, k) for s in ("a", "b") for r in ("1", "2") for k in ("x", "y")}
    assert len(ids) == 8
    assert event_id("a\x1fb", "c", "k") != event_id("a", "b\x1fc", "k")


def test_a_different_source_gives_different_ids(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    text = (MAPPINGS / "pos.toml").read_text().replace('"pos-retail"', '"pos-outlet"')
    mapping.write_text(text)
    ours = {e.event_id for e in ingest("store", mapping=mapping)[1]}
    assert ours.isdisjoint(e.event_id for e in ingest("store")[1])


def test_unidentified_records_are_rejected_unless_skipped(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text((MAPPINGS / "pos.toml").read_text().replace('= "skip"', '= "reject"'))
    summary, _, errors = ingest("store", mapping=mapping)
    assert (summary.rejected, summary.skipped) == (10, 0)
    assert sum(reason.startswith("no usable identifier") for _, reason in errors) == 4


def test_the_loop_reports_bad_lines_and_keeps_going() -> None:
    rows: list[Record | BadLine] = [BadLine(2, "not JSON"), Record(3, {}), Record(5, {})]
    seen: list[int] = []
    summary = ingest_records(
        rows, lambda r: [], lambda e: None, lambda line, _r: seen.append(line), progress=seen.append
    )
    assert seen == [2, 2, 3, 5]
    assert (summary.accepted, summary.rejected, summary.last_line) == (2, 1, 5)


def test_default_mappings_are_the_shipped_ones() -> None:
    args = _parser().parse_args(["ingest", "store", "x.jsonl"])
    assert args.mapping == MAPPINGS / "pos.toml" and args.kind == "store"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "store", "missing.jsonl"], "No such file or directory"),
        (
            ["ingest", "store", "{sample}", "--mapping", "{bad}"],
            "bad.toml:18: columns.amount: required",
        ),
        (["ingest", "call-center", "{sample}", "--mapping", "{pos}"], "channel: Input should be"),
        (["ingest", "store", "{txt}", "--mapping", "{noformat}"], "set file.format"),
        (["ingest", "call-center", "{txt}"], "mapped columns not in the CSV header: ContactID"),
    ],
)
def test_unusable_input_fails_before_kafka(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((MAPPINGS / "pos.toml").read_text().replace('amount = "total"', ""))
    txt = tmp_path / "contacts.txt"
    txt.write_text("x\n")
    noformat = tmp_path / "noformat.toml"
    noformat.write_text((MAPPINGS / "pos.toml").read_text().replace('format = "jsonl"', ""))
    where = {
        "sample": EXAMPLES / "pos.jsonl",
        "bad": bad,
        "pos": MAPPINGS / "pos.toml",
        "txt": txt,
        "noformat": noformat,
    }
    assert main([a.format(**where) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("journeys ingest: ") and message in err
