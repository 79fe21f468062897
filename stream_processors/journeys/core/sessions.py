"""UX sessions (docs/concepts.md §4): per person and channel, ended by an inactivity gap.

A session collects its events, friction and whether a task was completed in it (an event
that reached a journey's success stage, or one of the configured task event types). It is
reported once, when the channel's watermark passes its last event plus the gap: the timely
watermark for timely channels, the late-arriving channels' own watermark for the others
(their events may still be on their way long after the timely channels moved on).
"""

from __future__ import annotations

from collections.abc import Mapping

from stream_processors.journeys.core.deadlines import DeadlineWheel
from stream_processors.journeys.core.outputs import Output, SessionRecord
from stream_processors.journeys.core.state import Person, Session, session_id


class Sessions:
    """Open sessions of one partition, and the wheels that close them."""

    def __init__(self, gap_ms: int, late_channels: frozenset[str], resolution_ms: int) -> None:
        self.gap_ms = gap_ms
        self.late_channels = late_channels
        self._timely: DeadlineWheel[Session] = DeadlineWheel(resolution_ms)
        self._late: DeadlineWheel[Session] = DeadlineWheel(resolution_ms)
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
            out.append(record(session))
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

    def schedule(self, session: Session) -> None:
        wheel = self._late if session.channel in self.late_channels else self._timely
        wheel.schedule(session, session.last_ms + self.gap_ms)

    def sweep(
        self, people: Mapping[str, Person], timely_ms: int, late_ms: int, out: list[Output]
    ) -> list[Person]:
        """Close the sessions whose gap has passed; return the persons that lost one."""
        touched: list[Person] = []
        for wheel, watermark in ((self._timely, timely_ms), (self._late, late_ms)):
            for session in wheel.pop_due(watermark):
                person = people.get(session.person)
                if person is None or not _holds(person, session):
                    continue  # closed, merged or restored over since it was filed
                if session.last_ms + self.gap_ms <= watermark:
                    out.append(record(session))
                    _remove(person, session)
                    touched.append(person)
                else:
                    self.schedule(session)
        return touched

    def absorb(self, into: Person, other: Person) -> None:
        """Carry `other`'s sessions over to `into` (identity merge): one session per channel,
        the union of both when both had one open."""
        for session in other.sessions or ():
            session.person = into.id
            mine = next((s for s in into.sessions or () if s.channel == session.channel), None)
            if mine is None:
                into.sessions = [*(into.sessions or ()), session]
                self.schedule(session)
                continue
            if (session.start_ms, session.first_event) < (mine.start_ms, mine.first_event):
                mine.start_ms, mine.first_event = session.start_ms, session.first_event
                mine.first_touchpoint = session.first_touchpoint
            if session.last_ms > mine.last_ms:
                mine.last_ms, mine.last_touchpoint = session.last_ms, session.last_touchpoint
            mine.events += session.events
            mine.friction += session.friction
            mine.task = mine.task or session.task
            self.schedule(mine)


def _holds(person: Person, session: Session) -> bool:
    return session in (person.sessions or ())  # identity: Session has no __eq__


def _remove(person: Person, session: Session) -> None:
    sessions = person.sessions
    if sessions is not None:
        sessions.remove(session)  # by identity: Session has no __eq__
        if not sessions:
            person.sessions = None


def record(session: Session) -> SessionRecord:
    """The record of a session that ended."""
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
        ),
    )
