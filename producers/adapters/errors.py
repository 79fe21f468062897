"""The adapters' errors: one root, a leaf only where it carries data or is caught alone.

An unusable mapping file is not one of them: it raises `schemas.config_files.ConfigFileError`,
as every configuration file does."""

from __future__ import annotations


class AdapterError(Exception):
    """Root of everything an adapter can refuse in its input."""


class InputFileError(AdapterError):
    """A whole input file is unusable (unreadable, or a mapped column missing in its header)."""


class RecordError(AdapterError):
    """One record cannot become touchpoints; the message is the reason shown to people."""


class UnidentifiedError(RecordError):
    """A record with no usable identifier. Caught on its own: mappings may choose to skip
    such records (anonymous cash sales) instead of rejecting them."""
