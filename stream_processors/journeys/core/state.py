"""The journey core's state: persons, their tracks (one per definition and hold value), the
journey instances of each track, UX sessions and buffered events, and their plain-data form.

Plain classes with `__slots__`: a million open journeys must fit in memory, and the per-event
path reads and writes these attributes directly. `dump_person` / `load_person` turn one
person's state into JSON-ready lists and dicts and back (one changelog value per person).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson
import zstandard

from stream_processors.core.uuids import namespace, uuid5
from stream_processors.journeys.core.deadlines import NEVER, Timed
from stream_processors.journeys.core.match import Definition, Hit

if TYPE_CHECKING:
    from stream_processors.journeys.core.outputs import DropOff

# A journey's status, as an int (the form snapshots keep).
OPEN: Final = 0
CONVERTED: Final = 1
DROPPED: Final = 2
EXPIRED: Final = 3
MERGED: Final = 4
STATUS: Final = ("open", "converted", "dropped_off", "expired", "merged")
SNAPSHOT_VERSION: Final = 1
# One object for every track's floor: `-NEVER` written in `__init__` would build a new int
# (32 bytes) per track, a million times over.
_NO_FLOOR: Final = -NEVER
_NAMESPACE = namespace(uuid.UUID("6f1c3a2e-2b0d-5c43-9a57-0e4c7d1b8f20"))


def journey_id(definition: Definition, start_event: str) -> str:
    """Deterministic instance id: definition id and version, and the event that started it.
    No person in it: the id survives identity merges and replays alike (event ids are unique
    end to end, and one event starts at most one instance per definition)."""
    return uuid5(_NAMESPACE, f"{definition.id}\x1f{definition.version}\x1f{start_event}")


def session_id(channel: str, first_event: str) -> str:
    """Deterministic session id: its channel and first event (stable across merges)."""
    return uuid5(_NAMESPACE, f"session\x1f{channel}\x1f{first_event}")


# Distinct lists of channels a journey went through are few (the demo has six): restored
# journeys share one tuple per list (a tuple each is ~125 bytes per journey at a million).
# Live ones build their own, off the per-event path. Bounded: channel names come from events.
_CHANNEL_LISTS: dict[tuple[str, ...], tuple[str, ...]] = {}
_CHANNEL_LISTS_LIMIT: Final = 4096


def shared_channels(channels: tuple[str, ...]) -> tuple[str, ...]:
    """The one tuple of these channels restored journeys hold."""
    shared = _CHANNEL_LISTS.get(channels)
    if shared is None:
        if len(_CHANNEL_LISTS) >= _CHANNEL_LISTS_LIMIT:
            return channels
        shared = _CHANNEL_LISTS[channels] = channels
    return shared


# Memory and the garbage collector set the shapes below: a million open journeys are a few
# million objects, and every container the collector tracks is one it must visit. So growing
# collections are tuples (rebuilt when they grow, which is rare and they are short; tuples of
# plain values are untracked by the collector), and empty ones are None.


class Instance:
    """One journey instance. `reached` holds the hits that advanced it, in order; `ended_ms`
    is when it converted, expired or dropped off (the passed deadline, or the failure event)."""

    # What each event reads and writes first: these share the object's first cache lines.
    __slots__ = (  # noqa: RUF023
        "status",
        "start_ms",
        "deadline_ms",
        "touches",
        "friction",
        "last_channel",
        "last_ms",
        "last_touchpoint",
        "stage",
        "ended_ms",
        "channels",
        "failure",
        "id",
        "merged_into",
        "reached",
        "reopened_ms",
        "stage_ms",
        "start_event",
        "version",
        "signals",
        "reported",
    )

    def __init__(self, iid: str, hit: Hit) -> None:
        t, event_id, stage, channel, touchpoint = hit
        self.id = iid
        self.start_ms = t
        self.start_event = event_id
        self.stage = stage
        self.stage_ms = t
        self.deadline_ms = NEVER  # while open: when it drops off or expires (set by the fold)
        self.status = OPEN
        self.ended_ms: int | None = None
        self.failure = -1  # the failure stage that ended it, if one did
        self.reopened_ms: int | None = None
        self.reached: tuple[Hit, ...] = (hit,)
        self.touches = 1
        self.friction = 0
        self.channels: tuple[str, ...] = (channel,)
        self.last_channel = channel
        self.last_touchpoint = touchpoint
        self.last_ms = t
        self.version = 0
        self.merged_into: str | None = None
        # The distinct friction signals it met (`journey_signals` labels, the most recent
        # last, at most MAX_LABELS); None until the first: most journeys meet none.
        self.signals: tuple[str, ...] | None = None
        # The drop-off as reported while it stands (counts may grow after it with late
        # events of its time span): its retraction writes exactly that again. A plain tuple
        # of its fields when restored from a snapshot.
        self.reported: DropOff | tuple[Any, ...] | None = None


class Track(Timed):
    """A person's journeys of one definition (and hold value): the instances not yet sealed
    and every stage hit after `floor_ms`, from which they can be folded again."""

    __slots__ = ("definition", "floor_ms", "ghosts", "hits", "hold", "instances", "person")

    def __init__(self, definition: Definition, hold: str | None, person: str) -> None:
        self.definition = definition
        self.hold = hold
        self.person = person
        self.hits: tuple[Hit, ...] = ()
        self.floor_ms = _NO_FLOOR
        self.instances: tuple[Instance, ...] = ()
        # Instances a later fold absorbed into another (status MERGED), kept until sealing
        # so their versions keep counting if a fold brings them back.
        self.ghosts: dict[str, Instance] | None = None
        self.wake_ms = NEVER


class Session(Timed):
    """A UX session: one channel, ended by an inactivity gap."""

    __slots__ = (
        "channel",
        "events",
        "first_event",
        "first_touchpoint",
        "friction",
        "last_ms",
        "last_touchpoint",
        "person",
        "queued",
        "start_ms",
        "task",
        "version",
    )

    def __init__(
        self, person: str, channel: str, t: int, event_id: str, touchpoint: str | None
    ) -> None:
        self.person = person
        self.channel = channel
        self.first_event = event_id
        self.start_ms = t
        self.last_ms = t
        self.events = 0
        self.friction = 0
        self.task = False
        self.first_touchpoint = touchpoint
        self.last_touchpoint = touchpoint
        self.wake_ms = NEVER
        self.version = 0  # rows written under its id so far (open ones, then the closed one)
        self.queued = False  # changed since its last open row, and waiting for the next


# Buffered event: (event time ms, event id, the event as decoded).
Pending = tuple[int, str, dict[str, Any]]


class Person(Timed):
    """Everything the core holds for one person."""

    __slots__ = ("frozen", "gone", "id", "pending", "sessions", "tracks")

    def __init__(self, pid: str) -> None:
        self.id = pid
        # Set when the core lets go of it (forgotten, merged away, dropped, restored over):
        # wheel entries filed for it then wake nothing, without a lookup in a million persons.
        self.gone = False
        self.tracks: tuple[Track, ...] = ()
        self.sessions: list[Session] | None = None
        # Buffered events: most persons wait with one at a time, which is then kept as is
        # (a list for one costs two more allocations and the collector one more object).
        self.pending: Pending | list[Pending] | None = None
        self.wake_ms = NEVER  # when its earliest buffered event is due for release
        # A cold person's tracks as its snapshot (`Freezer.freeze`); None while it is live.
        self.frozen: bytes | None = None

    def is_empty(self) -> bool:
        return not (self.tracks or self.sessions or self.pending)

    def track(self, definition: Definition, hold: str | None) -> Track:
        for track in self.tracks:
            if track.definition is definition and track.hold == hold:
                return track
        track = Track(definition, hold, self.id)
        self.tracks = self.tracks + (track,)
        return track

    def drop_track(self, track: Track) -> None:
        self.tracks = tuple(t for t in self.tracks if t is not track)

    def buffered(self) -> list[Pending]:
        """The buffered events as a list (a new one if there is a single event)."""
        pending = self.pending
        if pending is None:
            return []
        return pending if isinstance(pending, list) else [pending]


# -- plain data ------------------------------------------------------------------------------


def dump_person(person: Person) -> dict[str, Any]:
    """One person's state as JSON-ready data (tuples stay tuples: orjson writes them as
    arrays, and copying them into lists was most of the cost of a snapshot)."""
    if person.frozen is not None:
        raise ValueError("a frozen person: thaw it first, or read its snapshot (Freezer.data)")
    return {
        "v": SNAPSHOT_VERSION,
        "tracks": [_dump_track(t) for t in person.tracks],
        "sessions": [_dump_session(s) for s in person.sessions or ()],
        "pending": tuple(person.buffered()),
    }


def _dump_session(s: Session) -> list[Any]:
    return [
        s.channel,
        s.first_event,
        s.start_ms,
        s.last_ms,
        s.events,
        s.friction,
        s.task,
        s.first_touchpoint,
        s.last_touchpoint,
        s.version,
        s.queued,
    ]


def _dump_track(track: Track) -> dict[str, Any]:
    return {
        "d": track.definition.key,
        "h": track.hold,
        "f": track.floor_ms,
        "hits": track.hits,
        "i": [_dump_instance(i) for i in track.instances],
        "g": [_dump_instance(i) for i in (track.ghosts or {}).values()],
    }


def _dump_instance(i: Instance) -> list[Any]:
    # Fields added later go at the end and are optional on load (`_load_instance`): older
    # snapshots still restore, and the snapshot version stays.
    return [
        i.id,
        i.start_ms,
        i.start_event,
        i.stage,
        i.stage_ms,
        i.status,
        i.ended_ms,
        i.failure,
        i.reopened_ms,
        i.version,
        i.touches,
        i.friction,
        i.channels,
        i.last_channel,
        i.last_touchpoint,
        i.last_ms,
        i.reached,
        i.merged_into,
        i.deadline_ms,
        i.signals,
        None if i.reported is None else tuple(i.reported),  # orjson takes no named tuples
    ]


def _same(name: str) -> str:
    return name


# What a loaded person's channel and touchpoint names become: the core passes its own shared
# name objects (`EventPlans.name`), as the events it takes live get.
ShareName = Callable[[str], str]


def load_person(
    pid: str,
    data: Mapping[str, Any],
    definitions: Mapping[str, Definition],
    share: ShareName = _same,
) -> tuple[Person, int]:
    """A person from `dump_person` output, and how many tracks were left out because their
    definition (id and version) is not loaded.

    What the live person shared, the loaded one shares again: names (`share`) and each hit
    between the track and the instances it advanced; and channel lists. Decoded JSON has a new
    object for each, and a person restored after a restart took more than twice the memory
    of the same person built from its events."""
    if data.get("v") != SNAPSHOT_VERSION:
        raise ValueError(f"unsupported journey snapshot version {data.get('v')!r}")
    person = Person(pid)
    tracks = [(definitions.get(raw["d"]), raw) for raw in data["tracks"]]
    person.tracks = tuple(_load_track(pid, raw, d, share) for d, raw in tracks if d is not None)
    sessions = []
    for row in data["sessions"]:
        session = Session(pid, share(row[0]), row[2], row[1], _name(share, row[7]))
        session.last_ms, session.events, session.friction, session.task = row[3:7]
        session.last_touchpoint = _name(share, row[8])
        if len(row) > 9:  # snapshots written before open sessions were reported lack these
            session.version, session.queued = row[9], row[10]
        sessions.append(session)
    person.sessions = sessions or None
    person.pending = [(p[0], p[1], p[2]) for p in data["pending"]] or None
    return person, len(tracks) - len(person.tracks)


def _name(share: ShareName, name: str | None) -> str | None:
    return None if name is None else share(name)


def _load_track(
    pid: str, raw: Mapping[str, Any], definition: Definition, share: ShareName
) -> Track:
    track = Track(definition, raw["h"], pid)
    track.floor_ms = raw["f"]
    track.hits = tuple(_hit(h, share) for h in raw["hits"])
    # A track holds one hit per event: the instances' hits still among it are those objects.
    hits = {hit[1]: hit for hit in track.hits}
    track.instances = tuple(_load_instance(row, share, hits) for row in raw["i"])
    if raw["g"]:
        track.ghosts = {row[0]: _load_instance(row, share, hits) for row in raw["g"]}
    return track


def _hit(row: list[Any], share: ShareName) -> Hit:
    return (row[0], row[1], row[2], share(row[3]), _name(share, row[4]))


def _kept(row: list[Any], share: ShareName, hits: Mapping[str, Hit]) -> Hit:
    hit = _hit(row, share)
    kept = hits.get(hit[1])
    return kept if kept == hit else hit


def _load_instance(row: list[Any], share: ShareName, hits: Mapping[str, Hit]) -> Instance:
    reached = tuple(_kept(h, share, hits) for h in row[16])
    inst = Instance(row[0], reached[0])
    inst.start_ms, inst.stage, inst.stage_ms = row[1], row[3], row[4]
    # The instance started with its first hit: the same event id object, when it is.
    inst.start_event = reached[0][1] if reached[0][1] == row[2] else row[2]
    inst.status, inst.ended_ms, inst.failure, inst.reopened_ms, inst.version = row[5:10]
    inst.touches, inst.friction = row[10], row[11]
    inst.deadline_ms = row[18]
    inst.channels = shared_channels(tuple(share(c) for c in row[12]))
    inst.last_channel, inst.last_touchpoint = share(row[13]), _name(share, row[14])
    inst.last_ms = row[15]
    inst.reached = reached
    inst.merged_into = row[17]
    if len(row) > 19 and row[19]:  # snapshots written before journeys kept signals have none
        inst.signals = tuple(row[19])
    if len(row) > 20 and row[20]:  # nor the drop-off as reported: a retraction rebuilds it
        inst.reported = _reported(row[20])
    return inst


def _reported(row: list[Any]) -> tuple[Any, ...]:
    """A reported drop-off's fields as JSON gave them back (its arrays as tuples)."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in row)


# -- cold persons ------------------------------------------------------------------------------
# Most persons the core holds have no open journey, session or buffered event: their journeys
# ended and are kept for the late tolerance (72 h by default) in case a late event changes
# them. As objects they took about five times the memory of their snapshot compressed, so they
# are kept as that, and thawed when anything needs their journeys.


def is_cold(person: Person) -> bool:
    """No open journey, no session, no buffered event: nothing to do until an event comes
    or a sealing time passes."""
    if person.pending is not None or person.sessions or person.gone or not person.tracks:
        return False
    return all(inst.status != OPEN for track in person.tracks for inst in track.instances)


class Freezer:
    """Freezes and thaws one core's cold persons. Their snapshot (`dump_person` as JSON) is
    kept compressed with zstd at level 1: 40% of the JSON's size in about 7 us (zlib took 50
    us for the same; lz4 4 us for half as much again). One per core: a zstd compressor is not
    to be shared between threads."""

    __slots__ = ("_compress", "_decompress")

    def __init__(self) -> None:
        self._compress = zstandard.ZstdCompressor(level=1).compress
        self._decompress = zstandard.ZstdDecompressor().decompress

    def freeze(self, person: Person) -> bytes:
        """Keep a cold person's tracks as their snapshot; return the snapshot as JSON.

        The Track objects stay, emptied: the deadline wheel holds them (a frozen person
        wakes when one is due, as it would live), and thawing fills the same objects
        again."""
        snapshot = orjson.dumps(dump_person(person))
        # Copied to its own size: zstd's output (as orjson's) holds a larger allocation.
        person.frozen = memoryview(self._compress(snapshot)).tobytes()
        for track in person.tracks:
            track.hits = ()
            track.instances = ()
            track.ghosts = None
        return snapshot

    def json(self, person: Person) -> bytes:
        """A frozen person's snapshot as JSON (without the events buffered since)."""
        assert person.frozen is not None
        return self._decompress(person.frozen)

    def data(self, person: Person) -> dict[str, Any]:
        """A frozen person's snapshot as `dump_person` gives it, buffered events included."""
        data: dict[str, Any] = orjson.loads(self.json(person))
        data["pending"] = tuple(person.buffered())
        return data

    def thaw(
        self, person: Person, definitions: Mapping[str, Definition], share: ShareName = _same
    ) -> None:
        """Give a frozen person its tracks' contents back, in the same Track objects."""
        if person.frozen is None:
            return
        loaded, _ = load_person(person.id, orjson.loads(self.json(person)), definitions, share)
        # The snapshot was taken of exactly these tracks, and definitions do not change while
        # the core runs: one loaded track per track, in order.
        for track, got in zip(person.tracks, loaded.tracks, strict=True):
            track.hits, track.instances, track.ghosts = got.hits, got.instances, got.ghosts
            track.floor_ms = got.floor_ms
        person.frozen = None
