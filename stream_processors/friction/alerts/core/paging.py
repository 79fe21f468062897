"""Who an alert's version pages, and what it tells them (docs/concepts.md §6).

An alert groups series that several teams may own (the checkout's friction is the payments
team's, the web channel's the storefront's), and its headline may move from one to another
while it fires. The rules:

- an alert that **opens** (or fires again after it resolved) pages every team that owns one
  of its series now;
- while it fires, a team that comes to own one of its series (the headline moved to a series
  it owns, or such a series joined) and was not paged yet is paged, told what changed and who
  was paged before; the teams already paged are not paged again;
- a **resolve** or a **retraction** pages every team the alert ever paged, so nobody is left
  holding a page for a problem that is over;
- an update of figures, or of teams already paged, pages no one.

Without a routing file there are no teams: a version pages (with `page` empty) when its
status changes, and the webhook thread routes it by its headline as before.

Pure: the decision for one version, from the version before and the teams paged so far.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stream_processors.friction.alerts.core.incident_records import Status
from stream_processors.friction.alerts.core.records import AlertRecord


@dataclass(frozen=True, slots=True)
class Pages:
    """One version's paging: the teams it pages, in words why, and whether it pages at all
    (a status change pages even when no team is known)."""

    page: tuple[str, ...]
    change: str | None
    notify: bool


NOBODY = Pages((), None, False)


def owners(record: AlertRecord) -> tuple[str, ...]:
    """The teams that own the alert's series now: the headline's first, then those of its
    related series that are not withdrawn, each once."""
    teams = [record.team] if record.team else []
    teams += [r.team for r in record.related if r.team and r.status != "retracted"]
    return unique(teams)


def decide(
    previous: AlertRecord | None,
    record: AlertRecord,
    notified: Status | None,
    paged: tuple[str, ...],
) -> Pages:
    """The pages of `record` (its `teams` filled in), after `previous` was published, the last
    status paged about was `notified` and the teams in `paged` were paged; see the module
    docstring."""
    if record.status != notified:
        if record.status == "firing":
            return Pages(record.teams, "opened" if notified is None else "firing again", True)
        return Pages(paged, record.status, True)
    if record.status != "firing":
        return NOBODY
    new = tuple(team for team in record.teams if team not in paged)
    if not new:
        return NOBODY
    return Pages(new, "; ".join(_what_changed(previous, record, team) for team in new), True)


def unique(teams: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(teams))


def _what_changed(previous: AlertRecord | None, record: AlertRecord, team: str) -> str:
    if previous is not None and record.team == team and previous.series != record.series:
        was = previous.team or "no team"
        return f"the headline moved from {previous.series} ({was}) to {record.series} ({team})"
    series = ", ".join(str(s) for s in record.series_of(team))
    return f"{series} ({team}) joined the alert"
