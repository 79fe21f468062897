"""The adapters' errors: one root, a leaf only where it carries data or is caught alone."""

from __future__ import annotations

from pathlib import Path


class AdapterError(Exception):
    """Root of everything an adapter can refuse."""


class MappingError(AdapterError):
    """A mapping file that cannot be used; `problems` are `key: reason` lines."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: invalid mapping:\n  " + "\n  ".join(problems))
        self.path = path
        self.problems = problems


class InputFileError(AdapterError):
    """A whole input file is unusable (unreadable, or a mapped column missing in its header)."""


class RecordError(AdapterError):
    """One record cannot become touchpoints; the message is the reason shown to people."""


class UnidentifiedError(RecordError):
    """A record with no usable identifier. Caught on its own: mappings may choose to skip
    such records (anonymous cash sales) instead of rejecting them."""
