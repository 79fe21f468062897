"""The thin edge of the offline adapters: read an export file, publish its touchpoints.

`ingest_records` is the loop (pure: it takes a publish function, so tests feed a list);
`run_ingest` wires it to the file, the mapping and the project's `Publisher`. A bad line is
reported as `FILE:LINE: reason` and the file goes on; the exit code says whether any line was
rejected.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TypeVar

from producers.adapters.contact_center import derive_contact
from producers.adapters.errors import InputFileError, RecordError, UnidentifiedError
from producers.adapters.mapping import ContactCenterMapping, MappingBase, PosMapping, load_mapping
from producers.adapters.pos import derive_sale
from producers.adapters.records import BadLine, Record, file_format, read_records
from producers.pii import PiiHasher
from schemas.settings import Settings
from schemas.touchpoint import Touchpoint

Kind = Literal["call-center", "store"]
Derive = Callable[[Record], list[Touchpoint]]
M = TypeVar("M", bound=MappingBase)


@dataclass(frozen=True, slots=True)
class Plan:
    """A loaded mapping, the columns it names and how a record becomes touchpoints."""

    mapping: MappingBase
    columns: list[str]
    derive: Derive


@dataclass(slots=True)
class IngestSummary:
    """What one file gave: accepted records, their touchpoints, rejected and skipped lines."""

    accepted: int = 0
    events: int = 0
    rejected: int = 0
    skipped: int = 0
    last_line: int = 0


def plan_for(kind: Kind, mapping_path: Path, hasher: PiiHasher) -> Plan:
    """Load the mapping of an adapter; raises `ConfigFileError` naming every bad key."""
    if kind == "call-center":
        contact = load_mapping(mapping_path, ContactCenterMapping)
        derive_c = _bind(derive_contact, contact, hasher)
        return Plan(contact, _mapped(contact.columns.model_dump()), derive_c)
    sale = load_mapping(mapping_path, PosMapping)
    return Plan(sale, _mapped(sale.columns.model_dump()), _bind(derive_sale, sale, hasher))


def _bind(
    fn: Callable[[Record, M, PiiHasher], list[Touchpoint]], mapping: M, hasher: PiiHasher
) -> Derive:
    return lambda record: fn(record, mapping, hasher)


def _mapped(columns: dict[str, str | None]) -> list[str]:
    return [c for c in columns.values() if c is not None]


def ingest_records(
    rows: Iterable[Record | BadLine],
    derive: Derive,
    publish: Callable[[Touchpoint], None],
    report: Callable[[int, str], None],
    *,
    skip_unidentified: bool = False,
    progress: Callable[[int], None] = lambda _line: None,
) -> IngestSummary:
    """Derive and publish every record; bad ones go to `report(line, reason)`."""
    summary = IngestSummary()
    for row in rows:
        summary.last_line = row.line
        progress(row.line)
        outcome = row.reason if isinstance(row, BadLine) else _derive(row, derive)
        if isinstance(outcome, list):
            for event in outcome:
                publish(event)
            summary.accepted += 1
            summary.events += len(outcome)
        elif isinstance(outcome, UnidentifiedError) and skip_unidentified:
            summary.skipped += 1
        else:
            summary.rejected += 1
            report(row.line, str(outcome))
    return summary


def _derive(record: Record, derive: Derive) -> list[Touchpoint] | RecordError:
    try:
        return derive(record)
    except RecordError as exc:
        return exc


def run_ingest(
    settings: Settings, kind: Kind, path: Path, mapping_path: Path, err: IO[str] = sys.stderr
) -> int:
    """Publish the touchpoints of one export file to `raw`. Returns 0 when every line was
    accepted, 1 when some were rejected. Raises `ConfigFileError` for an unusable mapping,
    `AdapterError` for an unusable file, `OSError` for an unreadable one."""
    from producers.files import Progress, publisher  # the Kafka edge, imported only here

    plan = plan_for(kind, mapping_path, PiiHasher(settings.pii))
    spec = plan.mapping.file
    try:
        fmt = file_format(path, spec)
    except InputFileError as exc:
        raise InputFileError(f"{path}: {exc}") from None
    total = _count_lines(path)
    with open(path, encoding=spec.encoding, errors="replace", newline="") as fh:
        try:
            rows = read_records(fh, fmt, spec, plan.columns)
        except InputFileError as exc:
            raise InputFileError(f"{path}: {exc}") from None
        pub = publisher(settings)
        progress = Progress(f"ingest {kind} {path} (lines)", total, stream=err)
        summary = ingest_records(
            rows,
            plan.derive,
            pub.publish,
            lambda line, reason: print(f"{path}:{line}: {reason}", file=err),
            skip_unidentified=plan.mapping.unidentified == "skip",
            progress=progress.update,
        )
        pub.flush()
    progress.update(summary.last_line, force=True)
    print(_describe(summary), file=err)
    return 1 if summary.rejected else 0


def _describe(summary: IngestSummary) -> str:
    skipped = f", skipped {summary.skipped:,} without identifier" if summary.skipped else ""
    return (
        f"published {summary.events:,} touchpoints from {summary.accepted:,} "
        f"records, rejected {summary.rejected:,} lines{skipped}"
    )


def _count_lines(path: Path) -> int:
    """Lines in the file, for progress; a quick binary pass even over large files."""
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
