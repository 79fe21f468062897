"""A whole tracking request to an `Outcome`: the HTTP answer, the touchpoints to publish and
the dead letters to write. Pure: the clocks are arguments, nothing is sent from here.

Order of checks, so the answer names the first real problem: size and encoding (413, 415,
400), JSON (400), write key (401), rate (429), then each call. Calls that cannot be used are
listed in the answer with their index, field and reason; if none is usable the request gets
400 (413 when size was the only problem). Otherwise it gets 200 and the unusable calls go to
the ingest dead-letter topic (scrubbed of contact details, like everything else).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from producers.collector import protocol
from producers.collector.auth import Source, Sources, query_write_key, write_key
from producers.collector.protocol import BATCH, CALLS, HttpError, Limits
from producers.collector.ratelimit import RateLimiter
from producers.collector.scrub import Scrubber
from producers.collector.segment import Encoded, Problem, Received, Rejected, to_fragment
from schemas.deadletter import DeadLetter, FieldError
from schemas.touchpoint import MAX_EVENT_BYTES

STAGE = "collector"
# A dead letter is one Kafka message, and escaping can double a raw payload inside it: cut
# payloads beyond this so a record stays far below Kafka's 1 MB message limit.
MAX_DEAD_RAW = 256 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    """What the collector needs from an HTTP request."""

    kind: str  # a call name, or BATCH
    path: str
    body: bytes
    authorization: str | None = None
    content_encoding: str | None = None
    query: str = ""
    peer: str | None = None  # the client's address (kept only masked, if a source says so)


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    problem: Problem

    def as_json(self) -> dict[str, Any]:
        p = self.problem
        return {"index": self.index, "field": p.field, "reason": p.reason, "message": p.message}


@dataclass(slots=True)
class Outcome:
    """The answer to one request and what must reach Kafka before it is given."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()
    events: list[tuple[str, bytes]] = field(default_factory=list)  # (partition key, JSON)
    dead_letters: list[bytes] = field(default_factory=list)
    source: str = ""  # the source's name: metrics label and dead-letter partition key
    rejected: list[Rejection] = field(default_factory=list)
    history: bool = False  # the events go to the history domain's `raw` (docs/concepts.md)


class Intake:
    def __init__(
        self,
        sources: Sources,
        limits: Limits,
        limiter: RateLimiter,
        scrubber: Scrubber,
        future_tolerance: timedelta,
        *,
        max_age: timedelta = timedelta(days=730),
    ) -> None:
        self.sources = sources
        self.limits = limits
        self.limiter = limiter
        self.scrubber = scrubber
        self.future_tolerance = future_tolerance
        self.max_age = max_age

    def handle(self, req: Request, now: datetime, monotonic: float) -> Outcome:
        """The outcome of one request; `now` stamps `received_at`, `monotonic` paces rates."""
        try:
            return self._handle(req, now, monotonic)
        except HttpError as err:
            return Outcome(err.status, err.body(), err.headers)

    def _handle(self, req: Request, now: datetime, monotonic: float) -> Outcome:
        body = protocol.decode_body(req.body, req.content_encoding, self.limits.for_route(req.kind))
        early = None
        if req.authorization or query_write_key(req.query):  # refuse before parsing
            early = self.sources.lookup(write_key(req.authorization, req.query, {}))
        doc = protocol.parse_json(body)
        source = early or self.sources.lookup(write_key(None, req.query, doc))
        exact = protocol.exact_integers(body)  # rarely: only with a run of 19 digits
        messages = protocol.messages_of(doc if exact is None else exact, req.kind)
        self._rate(source, len(messages), monotonic)
        history = req.path in protocol.HISTORY_PATHS
        rx = Received(
            source, now, self.future_tolerance, doc.get("sentAt"), req.peer, self.max_age, history
        )
        shared = doc.get("context") if req.kind == BATCH else None
        outcome = Outcome(200, {}, source=source.name, history=history)
        warnings: list[dict[str, Any]] = []
        # Measuring also finds calls nested too deeply to write (a single call's body was
        # already held to the per-call limit, but not to a depth).
        measured = protocol.within_limit(messages, self.limits.max_event_bytes, len(body))
        for index, msg in enumerate(messages):
            result = self._one(msg, req.kind, rx, shared, measured[index], exact=exact is not None)
            if isinstance(result, Problem):
                outcome.rejected.append(Rejection(index, _named(result, req.kind, index)))
                continue
            fragment = result.fragment
            if len(fragment) > MAX_EVENT_BYTES:
                problem = Problem(
                    "(event)",
                    f"{len(fragment):,} bytes as a touchpoint > {MAX_EVENT_BYTES:,}",
                    "oversized",
                )
                outcome.rejected.append(Rejection(index, _named(problem, req.kind, index)))
                continue
            outcome.events.append((result.key, fragment))
            if result.notes:
                warnings += [{"index": index, "message": note} for note in result.notes]
        return self._answer(outcome, req, messages, warnings, now)

    def _rate(self, source: Source, cost: int, monotonic: float) -> None:
        wait = self.limiter.take(source.write_key, cost, monotonic)
        if wait > 0:
            seconds = str(max(1, math.ceil(wait)))
            raise HttpError(
                429,
                "rate_limited",
                f"more than {self.limiter.rate:,.0f} events per second for this write key; "
                f"retry in {seconds} s",
                headers=(("Retry-After", seconds), ("X-RateLimit-Reset", seconds)),
            )

    def _one(
        self, msg: Any, kind: str, rx: Received, shared: Any, measured: bool, *, exact: bool
    ) -> Encoded | Problem:
        if not isinstance(msg, dict):
            return Problem(
                "(event)", f"expected a JSON object, got {type(msg).__name__}", "not_an_object"
            )
        call = kind if kind != BATCH else msg.get("type")
        if call not in CALLS:
            return Problem("type", f"must be one of {', '.join(CALLS)}")
        if exact and (where := protocol.beyond_64_bits(msg)) is not None:
            return Problem(
                where,
                f"an integer beyond 64 bits (from {protocol.MIN_INT:,} to {protocol.MAX_INT:,})",
            )
        if not measured:
            problem = self._size(msg)
            if problem is not None:
                return problem
        if kind == BATCH and isinstance(shared, dict):  # the batch context, for every call
            msg = {**msg, "context": {**shared, **_dict(msg.get("context"))}}
        try:
            return to_fragment(msg, str(call), rx, self.scrubber)
        except Rejected as rejected:
            return _value_free(rejected.problem, msg)

    def _size(self, msg: dict[str, Any]) -> Problem | None:
        try:
            size = len(orjson.dumps(msg))
        except orjson.JSONEncodeError:
            where = protocol.too_deep(msg)
            if where is None:
                return Problem("(event)", "cannot be written as JSON")
            return Problem(where, f"nested too deeply (at most {protocol.MAX_DEPTH} levels)")
        limit = self.limits.max_event_bytes
        if size > limit:
            return Problem("(event)", f"{size:,} bytes > {limit:,} per call", "oversized")
        return None

    def _answer(
        self,
        outcome: Outcome,
        req: Request,
        messages: list[Any],
        warnings: list[dict[str, Any]],
        now: datetime,
    ) -> Outcome:
        rejected = [r.as_json() for r in outcome.rejected]
        if not outcome.events:
            first = outcome.rejected[0].problem
            more = len(rejected) - 1
            oversized = all(r.problem.reason == "oversized" for r in outcome.rejected)
            outcome.status = 413 if oversized else 400
            outcome.body = {
                "success": False,
                "code": first.reason,
                "field": first.field,
                "message": f"{first.field}: {first.message}" + (f" (+{more} more)" if more else ""),
                "rejected": rejected,
            }
            return outcome
        outcome.body = {"success": True, "accepted": len(outcome.events)}
        if rejected:
            outcome.body["rejected"] = rejected
        if warnings:
            outcome.body["warnings"] = warnings
        outcome.dead_letters = [
            self._dead_letter(r, messages[r.index], req.path, outcome.source, now)
            for r in outcome.rejected
        ]
        return outcome

    def _dead_letter(
        self, rejection: Rejection, msg: Any, path: str, source: str, now: datetime
    ) -> bytes:
        tree = self.scrubber.tree(msg)
        try:
            raw = orjson.dumps(tree).decode()
        except orjson.JSONEncodeError:  # an integer beyond 64 bits: kept exact, as text
            raw = json.dumps(tree)
        problem = rejection.problem
        detail = f"source {source}: {problem.field}: {problem.message}"
        if len(raw) > MAX_DEAD_RAW:
            detail += f" (raw payload cut from {len(raw):,} to {MAX_DEAD_RAW:,} characters)"
            raw = raw[:MAX_DEAD_RAW]
        record = DeadLetter(
            stage=STAGE,
            reason=problem.reason,
            errors=[FieldError(field=problem.field, message=problem.message)],
            detail=detail,
            raw=raw,
            source_topic=f"http:{path}",
            source_partition=-1,  # not read from Kafka: the request's index is the offset
            source_offset=rejection.index,
            rejected_at=now,
        )
        return record.model_dump_json().encode()


def _named(problem: Problem, kind: str, index: int) -> Problem:
    """The field as the client sees it: `batch[3].event` in a batch."""
    if kind != BATCH:
        return (
            problem
            if problem.field != "(event)"
            else Problem("body", problem.message, problem.reason)
        )
    where = f"batch[{index}]" if problem.field == "(event)" else f"batch[{index}].{problem.field}"
    return Problem(where, problem.message, problem.reason)


def _value_free(problem: Problem, msg: Any) -> Problem:
    """The problem as is, unless its message quotes a string of the call: an answer and a
    dead letter's errors name the field and what is wrong, never the value (it may be an
    e-mail address in a timestamp). Only rejected calls pay for the look."""
    quoted = any(_telling(s) and s in problem.message for s in _strings(msg))
    return Problem(problem.field, "invalid value", problem.reason) if quoted else problem


def _telling(text: str) -> bool:
    """Long or odd enough to be a value rather than a word the message uses anyway."""
    return len(text) >= 16 or (len(text) >= 5 and not text.isalpha())


def _strings(value: Any) -> list[str]:
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found += [k for k in item if isinstance(k, str)]
            stack += item.values()
        elif isinstance(item, list):
            stack += item
    return found


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
