"""schemas.partitioning: Kafka's murmur2 partitioner, checked against aiokafka and Java."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from schemas.partitioning import murmur2, partition_for


def _random_keys() -> list[bytes]:
    rng = random.Random(20240501)
    # Every length 0..64 (all four tail sizes, many times), then a few long keys.
    keys = [rng.randbytes(n) for n in range(65) for _ in range(8)]
    keys += [rng.randbytes(rng.randrange(100, 2000)) for _ in range(20)]
    return keys


@pytest.mark.parametrize(
    "key",
    [b"", b"\x00", b"\xff", b"ab", b"\xff\xfe", b"abc", b"\x80\x81\x82", b"abcd", b"\xff" * 7],
)
def test_murmur2_equals_aiokafka_on_edge_keys(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF


@pytest.mark.parametrize("length", [36, 124, 127, 128, 129, 131, 132, 133, 136])
def test_murmur2_equals_aiokafka_around_the_unpacking_switch(length: int) -> None:
    # Keys up to 128 bytes are unpacked with one Struct per word count, longer ones in a loop.
    keys = [random.Random(length * 7 + i).randbytes(length) for i in range(20)]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) & 0xFFFFFFFF for k in keys]


def test_murmur2_equals_aiokafka_on_random_keys() -> None:
    keys = _random_keys()
    assert {len(k) % 4 for k in keys} == {0, 1, 2, 3}
    mismatches = [k for k in keys if murmur2(k) != aiokafka_murmur2(k) & 0xFFFFFFFF]
    assert mismatches == []


# org.apache.kafka.common.utils.UtilsTest.testMurmur2 (signed Java ints).
@pytest.mark.parametrize(
    ("key", "java_int"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_equals_the_java_client(key: bytes, java_int: int) -> None:
    assert murmur2(key) == java_int & 0xFFFFFFFF


# Partitions among 1000 that Kafka's Java DefaultPartitioner picks (kafka-python's
# compatibility test, recorded from org.apache.kafka.clients.producer.Partitioner). The
# hashes of b"a" and b"123456789" have the top bit set, so Java's toPositive() matters.
@pytest.mark.parametrize(
    ("key", "partition"),
    [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742)],
)
def test_partition_for_equals_the_java_partitioner(key: bytes, partition: int) -> None:
    assert partition_for(key, 1000) == partition


@pytest.mark.parametrize("partitions", [1, 2, 3, 12, 1024])
def test_partition_for_is_in_range_and_stable(partitions: int) -> None:
    keys = _random_keys()
    chosen = [partition_for(k, partitions) for k in keys]
    assert all(0 <= p < partitions for p in chosen)
    assert chosen == [partition_for(k, partitions) for k in keys]
    if partitions <= 12:
        assert set(chosen) == set(range(partitions))  # 540 keys reach every partition
