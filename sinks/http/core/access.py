"""Who may query, and under which limits.

A user's limits are settings the interface applies to the engine after the request's own, so
a request's parameters cannot raise them.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from schemas.settings import ClickHouseUser
from sinks.http.core.errors import QueryError
from sinks.http.core.request import Credentials


def authenticate(users: Sequence[ClickHouseUser], asked: Credentials) -> ClickHouseUser:
    """The configured user these credentials name, or AUTHENTICATION_FAILED."""
    for user in users:
        if user.name == asked.user and hmac.compare_digest(
            user.password.get_secret_value().encode(), asked.password.encode()
        ):
            return user
    raise QueryError.of(
        516,
        f"{asked.user}: Authentication failed: password is incorrect, or there is no user "
        "with such name",
    )


def limits(user: ClickHouseUser) -> list[tuple[str, str]]:
    """The settings that bound every query of `user`."""
    found = []
    if user.max_threads is not None:
        found.append(("max_threads", str(user.max_threads)))
    if user.max_execution_time_seconds is not None:
        found.append(("max_execution_time", repr(user.max_execution_time_seconds)))
    if user.max_memory_usage_bytes is not None:
        found.append(("max_memory_usage", str(user.max_memory_usage_bytes)))
    return found


def handle_statements(
    user: ClickHouseUser, settings: dict[str, str], *, reads_only: bool = False
) -> list[str]:
    """What an engine handle runs before a request's query: the request's settings, then the
    user's limits (so no setting raised them), then the read-only level, last, since the
    engine refuses any change after it (an inline SETTINGS clause included): 1 for a
    read-only user, else what the request asked (`readonly` among its parameters applies with
    them, as with ClickHouse, whatever its place), else 2 for a GET (read, and set)."""
    statements = [
        f"SET {name} = {quote(value)}" for name, value in settings.items() if name != "readonly"
    ]
    statements += [f"SET {name} = {value}" for name, value in limits(user)]
    level = readonly_level(user, settings, reads_only=reads_only)
    if level:
        statements.append(f"SET readonly = {level}")
    return statements


def readonly_level(user: ClickHouseUser, settings: dict[str, str], *, reads_only: bool) -> int:
    """0 (may write), 1 (reads only, changes no setting) or 2 (reads, and sets)."""
    if user.readonly:
        return 1
    asked = settings.get("readonly", "0").strip()
    level = int(asked) if asked in {"0", "1", "2"} else 1  # anything else reads only
    return 2 if reads_only and level == 0 else level


def quote(value: str) -> str:
    """A setting's value as SQL: numbers bare, everything else a string literal."""
    try:
        float(value)
    except ValueError:
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    return value
