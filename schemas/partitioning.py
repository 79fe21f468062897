"""Kafka's default partitioner: murmur2 of the key bytes, as the Java client and aiokafka do.

Journeys chooses partitions itself so that one micro-batch holds events of one partition;
confluent-kafka producers are configured with `partitioner=murmur2_random`, which agrees with
this function, so a single event written by any client lands where our batches do.
"""

from __future__ import annotations

import struct

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
# Little-endian words unpacked in C in one call: a Struct per word count for keys up to 128
# bytes (person ids are 36), `iter_unpack` beyond.
_UNPACK = [struct.Struct(f"<{n}I").unpack_from for n in range(33)]
_ITER_WORDS = struct.Struct("<I").iter_unpack


def murmur2(data: bytes) -> int:
    """32-bit murmur2 with Kafka's seed, returned as an unsigned int."""
    length = len(data)
    h = 0x9747B28C ^ length
    count = length >> 2
    tail = count << 2
    m, mask = _M, _MASK
    if count < len(_UNPACK):
        words = _UNPACK[count](data)
    else:
        words = tuple(word for (word,) in _ITER_WORDS(data[:tail]))
    # Masking once per step is enough: XOR and the right shift never carry upwards.
    for word in words:
        k = (word * m) & mask
        h = ((h * m) ^ ((k ^ (k >> 24)) * m)) & mask
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-empty key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
