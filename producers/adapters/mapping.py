"""Mapping files: which column of an export holds what, how its times read, what its codes mean.

A mapping is a small TOML file (documented in `deploy/mappings/README.md`), validated by the
models below. Every key is checked, so a misspelt key or a bad value is an error that names
the line and the key (`contact_center.toml:18: columns.queued_at: required`), never a
silently ignored setting.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from producers.adapters.errors import RecordError
from schemas.config_files import load_config
from schemas.touchpoint import Name

Column = Annotated[str, StringConstraints(min_length=1)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
SaleType = Literal["purchase", "return"]
# Keys are the export's codes; "*" catches every code not listed.
ValueMap = dict[str, Name]
FALLBACK_CODE = "*"
TIME_KEYWORDS = ("iso", "epoch_seconds", "epoch_millis")


class Strict(BaseModel):
    """A mapping section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSpec(Strict):
    """How to read the file. `format` defaults to the file's extension (.csv, .jsonl)."""

    format: Literal["csv", "jsonl"] | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    # Cells holding one of these are empty, as if the column had no value.
    null_values: frozenset[str] = frozenset({"", "NULL", "null"})

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value


class TimeSpec(Strict):
    """How timestamps read: `iso`, `epoch_seconds`, `epoch_millis` or a strptime pattern.
    `timezone` applies to values that carry no offset of their own."""

    format: str = "iso"
    timezone: str = "UTC"

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in TIME_KEYWORDS and "%" not in value:
            raise ValueError(
                f"{value!r} is neither one of {', '.join(TIME_KEYWORDS)} nor a strptime "
                "pattern such as '%d/%m/%Y %H:%M:%S'"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/London'"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class MappingBase(Strict):
    """What every adapter's mapping has: the source system, file layout and time format."""

    source: Name
    file: FileSpec = FileSpec()
    time: TimeSpec = TimeSpec()
    # Records without any usable identifier cannot become touchpoints (the contract needs
    # one). `reject` reports them as bad lines; `skip` counts them (anonymous cash sales).
    unidentified: Literal["reject", "skip"] = "reject"


class ContactColumns(Strict):
    """Columns of a contact-center contact record. Identity: phone, email or customer_id."""

    contact_id: Column
    queued_at: Column
    answered_at: Column | None = None
    ended_at: Column
    agent: Column | None = None
    queue: Column | None = None
    disposition: Column | None = None
    transfers: Column | None = None
    phone: Column | None = None
    email: Column | None = None
    customer_id: Column | None = None
    wait_seconds: Column | None = None
    handle_seconds: Column | None = None

    @model_validator(mode="after")
    def _some_identity(self) -> ContactColumns:
        if not (self.phone or self.email or self.customer_id):
            raise ValueError("map at least one of phone, email, customer_id")
        return self


class ContactValues(Strict):
    """Value maps: export codes to the names touchpoints carry."""

    disposition: ValueMap = {}


class ContactCenterMapping(MappingBase):
    """A mapping for `journeys ingest call-center`."""

    channel: Literal["call_center"]
    columns: ContactColumns
    values: ContactValues = ContactValues()


class PosColumns(Strict):
    """Columns of a point-of-sale record. Identity: loyalty_id, customer_id, email or phone."""

    transaction_id: Column
    store_id: Column
    till: Column | None = None
    timestamp: Column
    type: Column | None = None
    amount: Column
    currency: Column | None = None
    items: Column | None = None
    loyalty_id: Column | None = None
    customer_id: Column | None = None
    email: Column | None = None
    phone: Column | None = None

    @model_validator(mode="after")
    def _some_identity(self) -> PosColumns:
        if not (self.loyalty_id or self.customer_id or self.email or self.phone):
            raise ValueError("map at least one of loyalty_id, customer_id, email, phone")
        return self


class PosValues(Strict):
    """Value maps: export transaction codes to `purchase` or `return`."""

    type: dict[str, SaleType] = {}


class PosMapping(MappingBase):
    """A mapping for `journeys ingest store`."""

    channel: Literal["store"]
    columns: PosColumns
    values: PosValues = PosValues()
    default_currency: Currency | None = None

    @model_validator(mode="after")
    def _some_currency(self) -> PosMapping:
        if self.columns.currency is None and self.default_currency is None:
            raise ValueError("map columns.currency or set default_currency")
        return self


def map_code(key: str, code: str | None, values: Mapping[str, str]) -> str | None:
    """An export code through its value map; without a map the code is kept as it is."""
    if code is None or not values:
        return code
    mapped = values.get(code, values.get(FALLBACK_CODE))
    if mapped is None:
        raise RecordError(f"{key}: the value is not in [values.{key}]")
    return mapped


M = TypeVar("M", bound=MappingBase)


def load_mapping(path: Path, model: type[M]) -> M:
    """Read and validate a mapping file; `schemas.config_files.ConfigFileError` lists every
    problem with its line and key."""
    return load_config(path, model, what="column mapping")
