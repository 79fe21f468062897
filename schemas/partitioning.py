"""Kafka's default partitioner: murmur2 of the key bytes, as the Java client and aiokafka do.

Journeys chooses partitions itself so that one micro-batch holds events of one partition;
confluent-kafka producers are configured with `partitioner=murmur2_random`, which agrees with
this function, so a single event written by any client lands where our batches do.
"""

from __future__ import annotations

import struct

_M = 0x5BD1E995
_WORDS = struct.Struct("<I").iter_unpack
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """32-bit murmur2 with Kafka's seed, returned as an unsigned int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    tail = length & ~3
    # Little-endian words, unpacked in C; masking once per step is enough for XOR.
    for (word,) in _WORDS(data[:tail]):
        k = (word * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) ^ (k * _M)) & _MASK
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-empty key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
