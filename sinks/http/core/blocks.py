"""ClickHouse's own compressed framing of HTTP bodies (`compress=1`, `decompress=1`), which the
JDBC driver asks for by default.

A body is a run of blocks, each: a 16-byte CityHash128 (v1.0.2, as ClickHouse links it) of
what follows, the method byte (0x82: LZ4, 0x02: none, 0x90: ZSTD), the block's size with its
9-byte header, the size of its data uncompressed, then the data. Readers verify the checksum.
"""

from __future__ import annotations

import struct

import lz4.block
import zstandard
from clickhouse_cityhash.cityhash import CityHash128

from sinks.http.core.errors import QueryError

LZ4 = 0x82
NONE = 0x02
ZSTD = 0x90
HEADER = struct.Struct("<BII")
CHECKSUM_BYTES = 16
BLOCK_BYTES = 1 << 20  # ClickHouse's max_compress_block_size
_MASK64 = (1 << 64) - 1


def checksum(framed: bytes) -> bytes:
    """CityHash128 as ClickHouse stores it: the hash's first 64-bit half, then its second, each
    little-endian. The Python binding returns the halves as one int, first << 64 | second."""
    value = CityHash128(framed)
    return struct.pack("<QQ", value >> 64, value & _MASK64)


def compress(data: bytes) -> bytes:
    """`data` as LZ4 blocks of at most BLOCK_BYTES each (an empty body stays empty)."""
    out = []
    for start in range(0, len(data), BLOCK_BYTES):
        raw = data[start : start + BLOCK_BYTES]
        packed = lz4.block.compress(raw, store_size=False)
        framed = HEADER.pack(LZ4, HEADER.size + len(packed), len(raw)) + packed
        out += [checksum(framed), framed]
    return b"".join(out)


def decompress(body: bytes) -> bytes:
    """The data of a framed body, or an error naming what is wrong with it."""
    out = []
    at = 0
    while at < len(body):
        if len(body) - at < CHECKSUM_BYTES + HEADER.size:
            raise _corrupt(f"a block is cut short at byte {at}")
        expected = body[at : at + CHECKSUM_BYTES]
        method, size, raw_size = HEADER.unpack_from(body, at + CHECKSUM_BYTES)
        framed = body[at + CHECKSUM_BYTES : at + CHECKSUM_BYTES + size]
        if len(framed) != size or size < HEADER.size:
            raise _corrupt(f"the block at byte {at} claims {size} bytes")
        if checksum(framed) != expected:
            raise _corrupt(f"the checksum of the block at byte {at} does not match")
        payload = framed[HEADER.size :]
        if method == LZ4:
            out.append(lz4.block.decompress(payload, uncompressed_size=raw_size))
        elif method == ZSTD:
            out.append(zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_size))
        elif method == NONE:
            out.append(payload)
        else:
            raise _corrupt(f"unknown compression method 0x{method:02x} at byte {at}")
        at += CHECKSUM_BYTES + size
    return b"".join(out)


def _corrupt(what: str) -> QueryError:
    return QueryError.of(271, f"Data compressed with ClickHouse's framing is corrupted: {what}")
