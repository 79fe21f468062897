"""What one request of the page asks, read from its query string before anything is read
from ClickHouse: the event-time range, the definition, the person, how many paths, JSON or
CSV. A malformed value is an `AskingError` (HTTP 400); an empty range is not: it is a
question with no answer, which the page shows as a message (`deploy.query.options`)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from deploy.query.options import TimeRange

FORMATS = ("json", "csv")
DEFAULT_PATHS = 10
MAX_PATHS = 50


class AskingError(ValueError):
    """A parameter the page never sends in this form; the message names it."""


@dataclass(frozen=True)
class Asked:
    since: str | None = None
    until: str | None = None
    definition: str | None = None
    person: str | None = None
    paths: int = DEFAULT_PATHS
    format: str = "json"

    def span(self) -> TimeRange:
        """The range; a `QueryError` (shown as a message) when it is empty or unreadable.
        The page's fields are named from and to, the command line's --from and --to."""
        return TimeRange.parse(self.since, self.until)


def parse(query_string: str) -> Asked:
    """The parameters of `?from=...&to=...&definition=...&id=...&limit=...&format=...`;
    an empty value counts as not given."""
    given = {k: v[-1].strip() for k, v in parse_qs(query_string).items() if v[-1].strip()}
    fmt = given.get("format", "json")
    if fmt not in FORMATS:
        raise AskingError(f"format {fmt!r}: choose {' or '.join(FORMATS)}")
    return Asked(
        since=given.get("from"),
        until=given.get("to"),
        definition=given.get("definition"),
        person=given.get("id"),
        paths=_paths(given.get("limit")),
        format=fmt,
    )


def _paths(text: str | None) -> int:
    if text is None:
        return DEFAULT_PATHS
    if not text.isdigit() or not 1 <= int(text) <= MAX_PATHS:
        raise AskingError(f"limit {text!r}: a number of paths from 1 to {MAX_PATHS}")
    return int(text)


def for_people(message: str) -> str:
    """A `deploy.query` message as the page words it: its fields are from and to."""
    return message.replace("--from", "from").replace("--to", "to")
