"""ClickHouse's errors as the HTTP interface answers them.

A client reads the code from `X-ClickHouse-Exception-Code` and the text from the body, the
way ClickHouse writes both, so drivers report our errors as they report a server's. The
status follows ClickHouse's own mapping with one difference: a failing query is the asker's
fault, so an error not known to be the server's is a 400, never a 5xx.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CODE = re.compile(r"Code:\s*(\d+)")

# Codes ClickHouse itself answers with a status other than 400.
_STATUS_BY_CODE = {
    194: 401,  # REQUIRED_PASSWORD
    192: 403,  # UNKNOWN_USER
    193: 403,  # WRONG_PASSWORD
    516: 403,  # AUTHENTICATION_FAILED
    164: 403,  # READONLY
    497: 403,  # ACCESS_DENIED
    60: 404,  # UNKNOWN_TABLE
    46: 404,  # UNKNOWN_FUNCTION
    47: 404,  # UNKNOWN_IDENTIFIER
    50: 404,  # UNKNOWN_TYPE
    73: 404,  # UNKNOWN_FORMAT
    81: 404,  # UNKNOWN_DATABASE
    63: 404,  # UNKNOWN_AGGREGATE_FUNCTION
    202: 503,  # TOO_MANY_SIMULTANEOUS_QUERIES
    159: 408,  # TIMEOUT_EXCEEDED: the user's max_execution_time
    241: 400,  # MEMORY_LIMIT_EXCEEDED: the user's max_memory_usage
    373: 409,  # SESSION_IS_LOCKED
    372: 404,  # SESSION_NOT_FOUND
    48: 501,  # NOT_IMPLEMENTED
    # The engine's own faults.
    49: 500,  # LOGICAL_ERROR
    173: 500,  # CANNOT_ALLOCATE_MEMORY
    1001: 500,  # STD_EXCEPTION
}

NAMES = {
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    36: "BAD_ARGUMENTS",
    48: "NOT_IMPLEMENTED",
    62: "SYNTAX_ERROR",
    164: "READONLY",
    194: "REQUIRED_PASSWORD",
    372: "SESSION_NOT_FOUND",
    373: "SESSION_IS_LOCKED",
    516: "AUTHENTICATION_FAILED",
    1002: "UNKNOWN_EXCEPTION",
}

UNKNOWN_EXCEPTION = 1002


@dataclass(frozen=True)
class QueryError(Exception):
    """An error to answer: ClickHouse's code and its message (without the `Code: N.` head)."""

    code: int
    message: str

    @classmethod
    def of(cls, code: int, message: str) -> QueryError:
        name = NAMES.get(code)
        return cls(code, f"DB::Exception: {message}" + (f" ({name})" if name else ""))

    @classmethod
    def from_engine(cls, text: str) -> QueryError:
        """The error the engine raised, as ClickHouse words it: `Code: 60. DB::Exception: ..."""
        text = text.strip()
        found = _CODE.search(text)
        if found is None:
            return cls(UNKNOWN_EXCEPTION, f"DB::Exception: {text}")
        message = text[found.end() :].lstrip(". ").strip()
        return cls(int(found.group(1)), message)

    @property
    def status(self) -> int:
        return _STATUS_BY_CODE.get(self.code, 400)

    def body(self) -> bytes:
        return f"Code: {self.code}. {self.message}\n".encode()
