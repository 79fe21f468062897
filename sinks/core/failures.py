"""Which failures the sink waits out (transient) and which ClickHouse refused for the data
itself (refused: retrying the same rows cannot help, so the batch is split).

The sink never exits on weather: an unreachable or overloaded ClickHouse, a timeout, a Kafka
coordinator that moves. It waits with capped exponential backoff for as long as it takes.
Only an answer about the rows (a parse error, a type mismatch, too many partitions in one
block) is a refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ClickHouse codes that describe the server's state, not the rows: the same insert succeeds
# once the server recovers.
TRANSIENT_CODES: dict[int, str] = {
    159: "timeout",  # TIMEOUT_EXCEEDED
    202: "overloaded",  # TOO_MANY_SIMULTANEOUS_QUERIES
    209: "timeout",  # SOCKET_TIMEOUT
    210: "unreachable",  # NETWORK_ERROR
    236: "aborted",  # ABORTED
    241: "memory",  # MEMORY_LIMIT_EXCEEDED
    242: "readonly",  # TABLE_IS_READ_ONLY
    243: "disk",  # NOT_ENOUGH_SPACE
    319: "unknown_status",  # UNKNOWN_STATUS_OF_INSERT: the token makes a retry safe
    394: "cancelled",  # QUERY_WAS_CANCELLED
    425: "system",  # SYSTEM_ERROR
    999: "keeper",  # KEEPER_EXCEPTION
}

# Codes about the deployment, not the rows: a missing table, a wrong password, a read-only
# user. Splitting would send every row of every batch to the dead-letter topic one by one;
# waiting keeps them in Kafka until someone fixes the setting, and the log line says which.
SETUP_CODES = {60, 81, 164, 192, 193, 194, 497, 516}

# 252 is TOO_MANY_PARTS for both: too many parts waiting for merges (the server catches
# up), and too many partitions in one INSERT block (the rows span too many months: a smaller
# block fixes it, so it is a refusal).
TOO_MANY_PARTS = 252
_PARTITIONS_PER_BLOCK = "too many partitions for single insert block"

_CODE = re.compile(r"\bcode:\s*(\d+)", re.IGNORECASE)
_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt: wait it out (`transient`) or not, a short `kind` for metrics and
    logs, ClickHouse's error code when it gave one, and its text."""

    transient: bool
    kind: str
    code: int | None = None
    text: str = ""


def classify(code: int | None, text: str, *, unreachable: bool = False) -> Failure:
    """Decide from ClickHouse's error code and text (and whether it answered at all)."""
    if unreachable:
        kind = "timeout" if "timed out" in text.lower() or "timeout" in text.lower() else None
        return Failure(True, kind or "unreachable", code, text)
    if code is None:
        return _without_code(text)
    kind = _transient_kind(code, text)
    return Failure(kind is not None, kind or f"code_{code}", code, text)


def _transient_kind(code: int, text: str) -> str | None:
    if code == TOO_MANY_PARTS:
        return None if _PARTITIONS_PER_BLOCK in text.lower() else "too_many_parts"
    if code in SETUP_CODES:
        return "setup"
    return TRANSIENT_CODES.get(code)


def _without_code(text: str) -> Failure:
    status = _HTTP_STATUS.search(text)
    if status is not None:
        http = int(status.group(1))
        # 413: the body is too large for the server, which a smaller piece fixes.
        return Failure(http != 413, f"http_{http}", None, text)
    # Nothing says the rows are at fault (a bug, an unknown driver error): waiting stalls
    # loudly, where a refusal would split every batch into dead letters.
    return Failure(True, "unknown", None, text)


def error_code(exc: BaseException) -> int | None:
    """ClickHouse's code of an exception: clickhouse-connect's `code`, else `Code: N` in its
    text (chDB's own messages)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    found = _CODE.search(str(exc))
    return int(found.group(1)) if found else None


def clickhouse_failure(exc: BaseException, *, unreachable: bool | None = None) -> Failure:
    """`classify` of an exception an insert raised; `unreachable` when the driver got no
    answer (connection refused or reset, a timeout), by default told from the exception."""
    text = " ".join(str(exc).split())
    if unreachable is None:
        unreachable = no_answer(exc)
    return classify(error_code(exc), text, unreachable=unreachable)


def no_answer(exc: BaseException) -> bool:
    """Did the request get no answer from ClickHouse at all? An OSError, or what
    clickhouse-connect raises for one: an OperationalError with no code and no HTTP status.
    (Told by the class's name, so this module needs no driver.)"""
    if isinstance(exc, OSError):
        return True
    operational = any(c.__name__ == "OperationalError" for c in type(exc).__mro__)
    return operational and error_code(exc) is None and _HTTP_STATUS.search(str(exc)) is None


# librdkafka's codes for a coordinator or broker that is moving, loading or out of reach,
# and for a group in the middle of a rebalance: the same commit succeeds shortly.
RETRIABLE_KAFKA_CODES = {
    -185,  # _TIMED_OUT
    -195,  # _TRANSPORT
    -187,  # _ALL_BROKERS_DOWN
    -180,  # _WAIT_COORD
    -164,  # _WAIT_CACHE
    -178,  # _IN_PROGRESS
    7,  # REQUEST_TIMED_OUT
    14,  # COORDINATOR_LOAD_IN_PROGRESS
    15,  # COORDINATOR_NOT_AVAILABLE
    16,  # NOT_COORDINATOR
    22,  # ILLEGAL_GENERATION: the group rejoins, then the commit is retried
    25,  # UNKNOWN_MEMBER_ID: likewise
    27,  # REBALANCE_IN_PROGRESS
}


def kafka_retriable(code: int, marked_retriable: bool) -> bool:
    """Should a failed Kafka request (an offset commit, reading committed offsets) be
    retried? Kafka marks some errors retriable; the coordinator and rebalance codes are
    retriable for us too, since the same request succeeds once the group settles."""
    return marked_retriable or code in RETRIABLE_KAFKA_CODES


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff: `first`, doubling, never more than `cap` seconds."""

    first: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1 for the first)."""
        if failures <= 0:
            return 0.0
        return float(min(self.cap, self.first * 2 ** min(failures - 1, 32)))
