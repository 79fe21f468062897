"""sinks.http.native: chDB's Native blocks reframed at a client's protocol revision, checked by
clickhouse-connect's own Native reader (which reads block info, not serialization kinds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.query import QueryContext, QueryResult
from clickhouse_connect.driver.transform import NativeTransform
from clickhouse_connect.driverc.buffer import ResponseBuffer  # the C readers take only it

from sinks.clickhouse import session
from sinks.http.native import BLOCK_INFO, DENSE, NativeError, at_revision

# Every kind of column the walk handles, over more rows than one block holds, with
# LowCardinality dictionaries larger than one granule's.
EVERY_KIND = """
SELECT number, toString(number) AS s, [number, 1] AS a,
       toLowCardinality(toString(number % 3)) AS lc,
       toLowCardinality(if(number % 5 = 0, NULL, toString(number))) AS lcn,
       if(number % 2, NULL, number) AS n, map('k', number) AS m, now64(3) AS t,
       (number, 'x') AS tu, [toLowCardinality(toString(number % 9))] AS alc,
       toDecimal64(1.5, 4) AS d, toFixedString('ab', 2) AS f, NULL AS z, generateUUIDv4() AS u,
       [[number]] AS aa, toDate('2026-01-01') AS day
FROM numbers(150000)
"""


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bytes]:
    path: Path = tmp_path_factory.mktemp("native") / "clickhouse"
    with session(f"chdb://{path}") as client:
        yield bytes(client.raw_query(EVERY_KIND, fmt="Native"))


class _Source:
    def __init__(self, body: bytes) -> None:
        self.gen = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])

    def close(self, ex: Exception | None = None) -> None:
        del ex


def parsed(body: bytes, block_info: bool) -> list[tuple[object, ...]]:
    context = QueryContext()
    context.block_info = block_info
    result = NativeTransform.parse_response(ResponseBuffer(_Source(body)), context)
    assert isinstance(result, QueryResult)
    return [tuple(row) for row in result.result_rows]


def test_revision_zero_is_left_as_chdb_wrote_it(native: bytes) -> None:
    assert at_revision(native, 0) is native


def test_block_info_before_every_block_reads_back_to_the_same_rows(native: bytes) -> None:
    reframed = at_revision(native, 54453)  # block info, no serialization kinds yet
    assert reframed.startswith(BLOCK_INFO)
    rows = parsed(reframed, block_info=True)
    assert len(rows) == 150_000
    assert rows == parsed(native, block_info=False)


def test_from_54454_each_column_type_is_followed_by_the_dense_kind(native: bytes) -> None:
    before, after = at_revision(native, 54453), at_revision(native, 54460)
    blocks = before.count(BLOCK_INFO)
    assert blocks > 1  # several blocks were walked
    assert len(after) == len(before) + blocks * 16 * len(DENSE)  # 16 columns per block
    assert b"\x06UInt64" + DENSE in after


def test_a_type_it_cannot_walk_is_a_clear_error() -> None:
    column = b"\x01x\x07Dynamic\x00"  # one column of a type with its own serialization
    with pytest.raises(NativeError, match="Dynamic"):
        at_revision(b"\x01\x01" + column, 54460)
