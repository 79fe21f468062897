"""UX sessions (docs/concepts.md §4): per person and channel, ended by an inactivity gap.

A session collects its events, friction and whether a task was completed in it (an event
that reached a journey's success stage, or one of the configured task event types). It is
closed when the channel's watermark passes its last event plus the gap: the timely watermark
for timely channels, the late-arriving channels' own watermark for the others (their events
may still be on their way long after the timely channels moved on, so a store or call-center
session stays open for the late tolerance).

While open it is visible too: a session that changed is reported `open` when the partition's
event time crosses the next multiple of the report interval, so each open session costs at
most one row per interval however many events it takes, and the rows of one sweep go out
with the stage's other outputs. Each row of a session carries a higher `version`; the closed
row is its last. A session whose id changes after it was reported (its first event changes:
an identity merge joined it with another, or an earlier late event arrived) is reported
`merged` under its old id, so no open row is left standing for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from stream_processors.journeys.core.deadlines import NEVER, DeadlineWheel
from stream_processors.journeys.core.outputs import Output, SessionRecord
from stream_processors.journeys.core.state import Person, Session, session_id

OPEN, CLOSED, MERGED = "open", "closed", "merged"


class Sessions:
    """Open sessions of one partition, the wheels that close them and the ones to report."""

    def __init__(
        self, gap_ms: int, late_channels: frozenset[str], resolution_ms: int, report_ms: int
    ) -> None:
        self.gap_ms = gap_ms
        self.late_channels = late_channels
        self.report_ms = report_ms
        self._timely: DeadlineWheel[Session] = DeadlineWheel(resolution_ms)
        self._late: DeadlineWheel[Session] = DeadlineWheel(resolution_ms)
        self._changed: list[Session] = []  # queued since the last report
        self._tick = -NEVER  # the report interval of the last report
        self.ignored = 0  # late events older than the session they would belong to

    def observe(
        self,
        person: Person,
        t: int,
        event_id: str,
        channel: str,
        touchpoint: str | None,
        *,
        friction: int,
        task: bool,
        out: list[Output],
    ) -> None:
        """Add one event (its time, id, channel and touchpoint) to its person's session on
        that channel, closing a stale one first (into `out`)."""
        session = None
        sessions = person.sessions
        if sessions is None:
            sessions = person.sessions = []
        else:
            for known in sessions:
                if known.channel == channel:
                    session = known
                    break
        gap = self.gap_ms
        if session is not None and t > session.last_ms + gap:
            out.append(record(session, CLOSED))
            sessions.remove(session)  # the list stays: a new session follows
            session = None
        if session is None:
            session = Session(person.id, channel, t, event_id, touchpoint)
            sessions.append(session)
            self.schedule(session)
        elif t < session.start_ms:
            if t < session.start_ms - gap:
                self.ignored += 1  # its own session was closed and reported already
                return
            if session.version:  # reported under the id this event changes
                out.append(record(session, MERGED))
                session.version = 0
            session.start_ms, session.first_event = t, event_id
            session.first_touchpoint = touchpoint
        session.events += 1
        session.friction += friction
        if task:
            session.task = True
        if t >= session.last_ms:
            # Its wake entry (filed when it opened) is earlier than the new due time: the
            # sweep files it again then, so nothing is filed per event.
            session.last_ms, session.last_touchpoint = t, touchpoint
        if not session.queued:
            self.queue(session)

    def queue(self, session: Session) -> None:
        """Report `session` as open at the next report interval."""
        session.queued = True
        self._changed.append(session)

    def schedule(self, session: Session) -> None:
        wheel = self._late if session.channel in self.late_channels else self._timely
        wheel.schedule(session, session.last_ms + self.gap_ms)

    def restore_time(self, watermark_ms: int) -> None:
        """The report interval a restored partition had reached (so it reports as before)."""
        self._tick = max(self._tick, watermark_ms // self.report_ms)

    def sweep(
        self, people: Mapping[str, Person], timely_ms: int, late_ms: int, out: list[Output]
    ) -> list[Person]:
        """Close the sessions whose gap has passed, and report the changed ones that are
        open when a report interval begins; return the persons whose sessions changed."""
        touched: list[Person] = []
        for wheel, watermark in ((self._timely, timely_ms), (self._late, late_ms)):
            for session in wheel.pop_due(watermark):
                person = people.get(session.person)
                if person is None or not _holds(person, session):
                    continue  # closed, merged or restored over since it was filed
                if session.last_ms + self.gap_ms <= watermark:
                    out.append(record(session, CLOSED))
                    _remove(person, session)
                    touched.append(person)
                else:
                    self.schedule(session)
        tick = timely_ms // self.report_ms
        if tick > self._tick and timely_ms > -NEVER:
            self._tick = tick
            touched += self._report(people, out)
        return touched

    def _report(self, people: Mapping[str, Person], out: list[Output]) -> list[Person]:
        """An open row for every queued session still open; in a fixed order, so a restored
        partition reports exactly what the original would have."""
        changed, self._changed = self._changed, []
        changed.sort(key=_order)
        reported = []
        for session in changed:
            session.queued = False
            person = people.get(session.person)
            if person is not None and _holds(person, session):
                out.append(record(session, OPEN))
                reported.append(person)
        return reported

    def absorb(self, into: Person, other: Person, out: list[Output]) -> None:
        """Carry `other`'s sessions over to `into` (identity merge): one session per channel,
        the union of both when both had one open; the one whose id gives way is reported
        `merged` if it was reported before."""
        for session in other.sessions or ():
            session.person = into.id
            mine = next((s for s in into.sessions or () if s.channel == session.channel), None)
            if mine is None:
                into.sessions = [*(into.sessions or ()), session]
                self.schedule(session)
                if not session.queued:  # reported again under its new person
                    self.queue(session)
                continue
            if (session.start_ms, session.first_event) < (mine.start_ms, mine.first_event):
                _give_way(mine, out)
                mine.start_ms, mine.first_event = session.start_ms, session.first_event
                mine.first_touchpoint = session.first_touchpoint
                mine.version = session.version  # its id is now the other's, with its rows
            else:
                _give_way(session, out)
            session.queued = False  # it lives on in `mine`: a queued entry reports nothing
            if session.last_ms > mine.last_ms:
                mine.last_ms, mine.last_touchpoint = session.last_ms, session.last_touchpoint
            mine.events += session.events
            mine.friction += session.friction
            mine.task = mine.task or session.task
            self.schedule(mine)
            if not mine.queued:
                self.queue(mine)


def _give_way(session: Session, out: list[Output]) -> None:
    if session.version:
        out.append(record(session, MERGED))


def _order(session: Session) -> tuple[int, str, str]:
    return (session.start_ms, session.channel, session.first_event)


def _holds(person: Person, session: Session) -> bool:
    return session in (person.sessions or ())  # identity: Session has no __eq__


def _remove(person: Person, session: Session) -> None:
    sessions = person.sessions
    if sessions is not None:
        sessions.remove(session)  # by identity: Session has no __eq__
        if not sessions:
            person.sessions = None


def record(session: Session, status: str) -> SessionRecord:
    """The next row of a session (its version counts up)."""
    session.version += 1
    return tuple.__new__(
        SessionRecord,
        (  # as journey_outputs builds its records
            session_id(session.channel, session.first_event),
            session.person,
            session.channel,
            session.start_ms,
            session.last_ms,
            session.events,
            session.friction,
            session.task,
            session.first_touchpoint,
            session.last_touchpoint,
            status,
            session.version,
        ),
    )
