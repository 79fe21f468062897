"""sinks.http.core.blocks and .encoding: bodies in ClickHouse's framing and HTTP codings."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from clickhouse_cityhash.cityhash import CityHash128

from sinks.http.core import blocks
from sinks.http.core.encoding import decode, encode, response_coding
from sinks.http.core.errors import QueryError


@pytest.mark.parametrize("size", [0, 1, blocks.BLOCK_BYTES - 1, blocks.BLOCK_BYTES * 2 + 7])
def test_framed_bodies_round_trip_in_blocks_of_at_most_a_mebibyte(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    framed = blocks.compress(data)
    assert blocks.decompress(framed) == data
    expected_blocks = -(-size // blocks.BLOCK_BYTES)
    at, seen = 0, 0
    while at < len(framed):
        method, length, raw = blocks.HEADER.unpack_from(framed, at + 16)
        assert method == blocks.LZ4 and raw <= blocks.BLOCK_BYTES
        at += 16 + length
        seen += 1
    assert seen == expected_blocks


def test_a_frame_is_byte_for_byte_what_the_jdbc_driver_accepts() -> None:
    # RowBinaryWithNamesAndTypes of `SELECT 1 AS one`, framed as ClickHouse JDBC 0.10.0
    # accepted it (a frame with the checksum's halves swapped fails its "checksum mismatch").
    payload = bytes.fromhex("01036f6e650555496e74380101")
    assert blocks.compress(payload) == bytes.fromhex(
        "b1775693efb273480380b8c50cbdb67282170000000d000000d001036f6e650555496e74380101"
    )


def test_the_checksum_is_cityhash128_first_half_first() -> None:
    framed = blocks.compress(b"journeys" * 100)
    value = CityHash128(framed[16:])
    assert framed[:16] == struct.pack("<QQ", value >> 64, value & (2**64 - 1))


def test_an_uncompressed_block_is_read() -> None:
    payload = b"plain"
    framed = blocks.HEADER.pack(blocks.NONE, blocks.HEADER.size + len(payload), len(payload))
    body = blocks.checksum(framed + payload) + framed + payload
    assert blocks.decompress(body) == payload


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda b: b[:-1], "claims"),
        (lambda b: b[:20], "cut short"),
        (lambda b: bytes([b[0] ^ 1]) + b[1:], "checksum"),
    ],
)
def test_a_damaged_framed_body_is_refused_with_what_is_wrong(
    damage: Callable[[bytes], bytes], words: str
) -> None:
    with pytest.raises(QueryError) as raised:
        blocks.decompress(damage(blocks.compress(b"abc" * 50)))
    assert words in raised.value.message
    assert raised.value.status == 400


@pytest.mark.parametrize("coding", ["lz4", "zstd", "gzip", "deflate"])
def test_each_http_coding_round_trips(coding: str) -> None:
    data = b"SELECT 1\n" * 500
    assert decode(encode(data, coding), coding) == data


def test_the_response_is_plain_unless_compression_was_asked() -> None:
    assert response_coding(False, "gzip") is None
    assert response_coding(True, "br, gzip") == "gzip"  # br is not offered here
    assert response_coding(True, "") is None


def test_an_unknown_or_corrupt_request_coding_is_a_client_error() -> None:
    with pytest.raises(QueryError) as unknown:
        decode(b"x", "compress")
    assert unknown.value.status == 501
    with pytest.raises(QueryError) as corrupt:
        decode(b"not gzip", "gzip")
    assert corrupt.value.status == 400
