"""Native blocks at the client's protocol revision.

A client that sends `client_protocol_version` (clickhouse-go, which Grafana's ClickHouse data
source uses) reads Native results the way ClickHouse's native protocol writes them: each block
starts with its block info, and from revision 54454 each column's type is followed by its
serialization kind. chDB writes Native as revision 0 (neither), and has no setting for it, so
the interface reframes each block: it walks each column's bytes only to find where they end
(clickhouse-connect parses the type names) and copies them untouched.
"""

from __future__ import annotations

import struct
from typing import Any

from clickhouse_connect.datatypes.registry import get_from_name

# Field 1 (is_overflows) = false, field 2 (bucket_num) = -1, end of fields.
BLOCK_INFO = bytes.fromhex("0100 02ffffffff 00")
WITH_BLOCK_INFO = 1  # any revision above 0
WITH_SERIALIZATION_KIND = 54454  # DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION
DENSE = b"\x00"  # the default serialization: what revision 0 output always is
# LowCardinality: the low byte of a granule's flags names the index width.
INDEX_BYTES = (1, 2, 4, 8)
HAS_ADDITIONAL_KEYS = 1 << 9
_U64 = struct.Struct("<Q")


class NativeError(ValueError):
    """A Native result this interface cannot reframe (a type it does not walk)."""


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def leb128(self) -> int:
        value = shift = 0
        while True:
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def string(self) -> bytes:
        size = self.leb128()
        self.at += size
        return self.data[self.at - size : self.at]

    def u64(self) -> int:
        (value,) = _U64.unpack_from(self.data, self.at)
        self.at += 8
        return int(value)

    def skip(self, size: int) -> None:
        self.at += size
        if self.at > len(self.data):
            raise NativeError("a Native block is cut short")


def at_revision(native: bytes, revision: int) -> bytes:
    """`native` (revision 0, as chDB writes it) as a server writes it for `revision`."""
    if revision < WITH_BLOCK_INFO:
        return native
    source = _Bytes(native)
    out: list[bytes] = []
    while source.at < len(native):
        columns, rows = source.leb128(), source.leb128()
        out += [BLOCK_INFO, _leb128(columns), _leb128(rows)]
        for _ in range(columns):
            head = source.at
            source.string()  # name
            type_name = source.string().decode()
            out.append(native[head : source.at])
            if revision >= WITH_SERIALIZATION_KIND:
                out.append(DENSE)
            start = source.at
            if rows:
                column = get_from_name(type_name)
                _prefix(column, source)
                _data(column, rows, source)
            out.append(native[start : source.at])
    return b"".join(out)


def _prefix(column: Any, source: _Bytes) -> None:
    """The column's state prefix, written once before its data (nested ones first)."""
    if column.low_card:
        source.skip(8)  # the shared-dictionary version
    elif column.base_type == "Array":
        _prefix(column.element_type, source)
    elif column.base_type == "Tuple":
        for element in column.element_types:
            _prefix(element, source)
    elif column.base_type == "Map":
        _prefix(column.key_type, source)
        _prefix(column.value_type, source)


def _data(column: Any, rows: int, source: _Bytes, *, plain: bool = False) -> None:
    """Past `rows` values of `column`; `plain`: without its Nullable and LowCardinality."""
    if column.low_card and not plain:
        _low_cardinality(column, rows, source)
    elif column.nullable and not plain:
        source.skip(rows)  # the null map
        _data(column, rows, source, plain=True)
    elif column.byte_size:
        source.skip(rows * column.byte_size)
    elif column.base_type == "String":
        for _ in range(rows):
            source.skip(source.leb128())
    elif column.base_type in ("Array", "Map"):
        source.skip(8 * (rows - 1))
        total = source.u64()  # the last offset: the elements of all rows
        if column.base_type == "Array":
            _data(column.element_type, total, source)
        else:
            _data(column.key_type, total, source)
            _data(column.value_type, total, source)
    elif column.base_type == "Tuple":
        for element in column.element_types:
            _data(element, rows, source)
    else:
        raise NativeError(f"cannot reframe Native columns of type {column.name}")


def _low_cardinality(column: Any, rows: int, source: _Bytes) -> None:
    """Granules of (flags, [keys], indexes) until `rows` indexes have been read."""
    seen = 0
    while seen < rows:
        flags = source.u64()
        if flags & HAS_ADDITIONAL_KEYS:
            _data(column, source.u64(), source, plain=True)
        count = source.u64()
        source.skip(count * INDEX_BYTES[flags & 0xFF])
        seen += count


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
