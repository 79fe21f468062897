"""What a `journeys query` command line asks, checked before anything is read: the event-time
range, the breakdowns, the steps of an ad-hoc funnel. Every problem is a `QueryError` whose
message is one line for people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from schemas.vocabulary import Channel


class QueryError(Exception):
    """A question that cannot be answered as asked; the message says why, in one line."""


@dataclass(frozen=True)
class TimeRange:
    """Event time from `since` (inclusive) to `until` (exclusive); None: unbounded."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> TimeRange:
        """From `--from`/`--to`: a date (`2026-01-05`, midnight UTC) or an ISO time (UTC when
        it names no zone). An empty range (`--from` not before `--to`) is an error."""
        made = cls(_instant(since, "--from"), _instant(until, "--to"))
        if made.since is not None and made.until is not None and made.since >= made.until:
            raise QueryError(
                f"empty range: --from {made.since:%Y-%m-%d %H:%M:%S} is not before "
                f"--to {made.until:%Y-%m-%d %H:%M:%S}"
            )
        return made

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def describe(self) -> str:
        since = "the beginning" if self.since is None else f"{self.since:%Y-%m-%d %H:%M:%S}"
        until = "now" if self.until is None else f"{self.until:%Y-%m-%d %H:%M:%S}"
        return f"between {since} and {until} (UTC)"


def _instant(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        found = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(
            f"{option} {text!r}: use a date (2026-01-05) or a time (2026-01-05T14:30)"
        ) from None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def breakdown_columns(asked: list[str] | None, allowed: dict[str, str], command: str) -> list[str]:
    """The columns behind `--by` names (in the order asked, each once), or a `QueryError`
    listing the names `command` takes."""
    columns: list[str] = []
    for name in asked or []:
        column = allowed.get(name)
        if column is None:
            choices = ", ".join(sorted(allowed)) or "none"
            raise QueryError(f"query {command} cannot break down by {name!r} (choose: {choices})")
        if column not in columns:
            columns.append(column)
    return columns


@dataclass(frozen=True)
class Step:
    """One step of an ad-hoc funnel: an event type, on one channel or any."""

    channel: str | None
    event_type: str

    def __str__(self) -> str:
        return f"{self.channel or '*'}:{self.event_type}"


def parse_steps(text: str) -> list[Step]:
    """`web:home_view,web:add_to_cart,*:order_completed` (a step without a channel, or with
    `*`, matches every channel); at least two steps."""
    steps = []
    channels = {c.value for c in Channel}
    for part in (p.strip() for p in text.split(",")):
        channel, _, event_type = part.rpartition(":")
        if not event_type:
            raise QueryError(f"--steps: {part!r} is not CHANNEL:EVENT_TYPE")
        if channel not in ("", "*") and channel not in channels:
            known = ", ".join(sorted(channels))
            raise QueryError(f"--steps: unknown channel {channel!r} in {part!r} (choose: {known})")
        steps.append(Step(None if channel in ("", "*") else channel, event_type))
    if len(steps) < 2:
        raise QueryError("--steps: a funnel needs at least two steps, separated by commas")
    return steps


def parse_window(text: str) -> timedelta:
    """`--window`: how long after the first step the last must happen (`7d`, `24h`, `30m`)."""
    from schemas.definitions import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise QueryError(f"--window: {exc}") from None
