"""The row path of ingest (`schemas.touchpoint_row`) changes nothing observable: on generated
events, valid and mutated, the core gives exactly what the model path gives when it decides
every event (`tests/unit/ingest/model_path.py`): the same fragments byte for byte, the same
rejections (reason, field errors, detail, raw bytes, event id), the same duplicates, watermark
input and first-seen state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.friction import Signal
from schemas.touchpoint import BLOCK_FIELDS, IDENTIFIER_FIELDS, Channel
from stream_processors.ingest.core.admission import Ingest, _Call
from tests.unit.builders import NOW
from tests.unit.ingest.model_path import ModelPathIngest

CONTRACTS = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"
SAMPLES = [orjson.loads(p.read_bytes()) for p in sorted(CONTRACTS.glob("v*/*.json"))]
TOLERANCE = timedelta(minutes=5)
LATE = frozenset({"store"})

# -- values: mostly valid, with the edges of each type ------------------------------------
# Integers as orjson decodes them (the stage's input): beyond 64 bits JSON gives floats.
ints64 = st.integers(-(2**63), 2**64 - 1)
junk = st.one_of(
    st.none(),
    st.booleans(),
    ints64,
    st.floats(),
    st.text(max_size=5),
    st.lists(ints64, max_size=2),
    st.dictionaries(st.text(max_size=3), ints64, max_size=2),
)
# Mostly valid (so the row path is exercised), with each type's edges now and then.
text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=10).filter(str.strip)
names = st.one_of(
    text,
    text,
    text,
    st.text(max_size=12),
    st.sampled_from(["page_view", " padded ", "x" * 128, "x" * 129, "", "  ", 'é\u2028\x00"\\']),
)
ids = st.one_of(text, text, text, text, text, st.sampled_from(["", " ", "x" * 256, "x" * 257]))


@st.composite
def event_ids(draw: st.DrawFn) -> Any:
    value = uuid.UUID(int=draw(st.integers(0, 12)), version=4)
    spellings = ["str", "str", "str", "upper", "hex", "urn", "braces", "uuid", "bad"]
    spelling = draw(st.sampled_from(spellings))
    return {
        "str": str(value),
        "upper": str(value).upper(),
        "hex": value.hex,
        "urn": value.urn,
        "braces": f"{{{value}}}",
        "uuid": value,
        "bad": str(value)[:-1],
    }[spelling]


@st.composite
def times(draw: st.DrawFn) -> Any:
    """ISO strings (or datetimes) around NOW, in several offsets, some in the future."""
    moment = NOW + timedelta(microseconds=draw(st.integers(-(10**11), 10**9)))
    if draw(st.booleans()):
        moment = moment.replace(microsecond=0)
    offset = timedelta(minutes=draw(st.sampled_from([0, 0, 330, -180, 60])))
    local = moment.astimezone(timezone(offset))
    form = draw(st.sampled_from(["iso"] * 5 + ["z", "z", "naive", "datetime", "date"]))
    if form == "z" and not offset:
        return local.isoformat().replace("+00:00", "Z")
    if form == "naive":
        return local.replace(tzinfo=None).isoformat()
    if form == "datetime":
        return local
    if form == "date":
        return local.date().isoformat()
    return local.isoformat()


property_values = st.one_of(
    st.text(max_size=6),
    ints64,
    st.floats(),
    st.booleans(),
    st.none(),
    st.sampled_from(["x" * 1024, "x" * 1025, 1e16, -0.0, 2**64 - 1]),
    junk,
)
properties = st.dictionaries(names, property_values, max_size=6) | st.sampled_from(
    [{f"k{i}": i for i in range(65)}, {f"k{i}": "x" * 1000 for i in range(40)}]
)


def block_fields(channel: str) -> dict[str, st.SearchStrategy[Any]]:
    """Each field mostly valid, sometimes at or past its bounds or of the wrong JSON type."""
    floats = st.one_of(st.floats(0, 3e6), st.integers(0, 10**6), st.sampled_from([-1, "5", None]))
    ints = st.one_of(st.integers(0, 599), st.integers(0, 599), st.sampled_from([-1, True, 5.0]))
    flags = st.one_of(st.booleans(), st.booleans(), st.sampled_from([1, "true", None]))
    return {
        "web": {
            "path": st.sampled_from(["/a", "/", "a", "/a?b", None]),
            "http_status": ints,
            "load_ms": floats,
            "rage_clicks": ints,
            "referrer": ids,
        },
        "app": {"screen": names, "os": names, "crash": flags, "response_ms": floats},
        "call_center": {
            "queue": names,
            "wait_seconds": floats,
            "transfers": ints,
            "abandoned": flags,
            "survey_score": st.floats(0, 11),
        },
        "store": {
            "store_id": names,
            "amount": floats,
            "currency": st.sampled_from(["EUR", "eur"]),
            "items": ints,
            "is_return": flags,
        },
    }[channel]


@st.composite
def blocks(draw: st.DrawFn, channel: str) -> dict[str, Any]:
    fields = block_fields(channel)
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=3))
    return {name: draw(fields[name]) for name in chosen}


stated = st.fixed_dictionaries(
    {"signal": st.sampled_from([*(s.value for s in Signal), "nope"])},
    optional={"detail": st.none() | st.text(max_size=4), "value": st.none() | st.floats(-1, 9)},
)


@st.composite
def events(draw: st.DrawFn) -> Any:
    """A valid event, then a few mutations (most events stay valid)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(SAMPLES) | junk)
    channel = draw(st.sampled_from([c.value for c in Channel]))
    ident = draw(st.lists(st.sampled_from(IDENTIFIER_FIELDS), min_size=1, max_size=3, unique=True))
    event: dict[str, Any] = {
        "event_id": draw(event_ids()),
        "channel": channel,
        "source": draw(names),
        "event_type": draw(names),
        "occurred_at": draw(times()),
        "identity": {name: draw(ids) for name in ident},
    }
    optional = {
        "schema_version": st.sampled_from([1, 1, 2, 2, 2, 0, 3, "2", True, 2.0]),
        "received_at": st.none() | times(),
        "session_id": st.none() | ids,
        "touchpoint": st.none() | names,
        "properties": properties,
        "backfill": st.sampled_from([True, False, "true", 1, "x"]),
        channel: blocks(channel) | blocks(channel) | st.none(),
        "friction": st.lists(stated, max_size=3) | st.just([{"signal": "error"}] * 17),
        draw(st.sampled_from([*BLOCK_FIELDS, "surprise"])): st.none() | st.just({}) | junk,
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=6)):
        event[name] = draw(optional[name])
    if (channel in event or "friction" in event) and draw(st.integers(0, 3)):
        event.setdefault("schema_version", 2)
    if draw(st.integers(0, 5)) == 0:  # break something
        target = draw(st.sampled_from(["event", "identity"]))
        doc = event if target == "event" else event["identity"]
        key = draw(st.sampled_from([*sorted(doc), "extra"]))
        if draw(st.booleans()):
            doc.pop(key, None)
        else:
            doc[key] = draw(junk)
    return event


def outcome(core: Ingest, seen: dict[str, int], batches: list[list[Any]]) -> Any:
    results = []
    for n, batch in enumerate(batches):
        r = core.process(batch, NOW + timedelta(seconds=n))
        results.append((r.fragments, r.rejected, r.duplicates, r.max_occurred_ms))
    return results, list(seen.items())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(events(), max_size=12), min_size=1, max_size=3))
def test_the_row_path_gives_exactly_what_the_model_path_gives(batches: list[list[Any]]) -> None:
    seen_row: dict[str, int] = {}
    seen_model: dict[str, int] = {}
    row = outcome(Ingest(seen_row, timedelta(days=7), TOLERANCE, LATE), seen_row, batches)
    model = outcome(
        ModelPathIngest(seen_model, timedelta(days=7), TOLERANCE, LATE), seen_model, batches
    )
    assert row == model


@settings(max_examples=50, deadline=None)
@given(offset=st.integers(-720, 720), micro=st.integers(0, 999_999))
def test_a_local_now_gives_the_same_received_at(offset: int, micro: int) -> None:
    utc = datetime(2025, 7, 1, microsecond=micro, tzinfo=UTC)  # after every sample
    now = utc.astimezone(timezone(timedelta(minutes=offset)))
    raws = [*SAMPLES, {**SAMPLES[0], "event_id": str(uuid.uuid4())}]
    row = Ingest({}, timedelta(days=7), TOLERANCE).process(raws, now)
    model = ModelPathIngest({}, timedelta(days=7), TOLERANCE).process(raws, now)
    assert row.fragments == model.fragments and len(row.fragments) == len(raws)
    assert all(orjson.loads(f)["received_at"].endswith("Z") for f in row.fragments)


def test_samples_take_the_row_path_and_match() -> None:
    """The frozen contract samples, with an explicit UTC `now` (the stage's)."""
    now = datetime(2025, 7, 1, tzinfo=UTC)
    row = Ingest({}, timedelta(days=7), TOLERANCE).process(SAMPLES, now)
    model = ModelPathIngest({}, timedelta(days=7), TOLERANCE).process(SAMPLES, now)
    assert row.fragments == model.fragments and not row.rejected


def test_the_samples_take_the_row_path_unless_it_is_forced_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without this, both sides of the comparisons above could be the model path."""
    decided: list[Any] = []
    model_path = Ingest._model

    def spy(self: Ingest, raw: Any, call: _Call) -> None:
        decided.append(raw)
        model_path(self, raw, call)

    monkeypatch.setattr(Ingest, "_model", spy)
    now = datetime(2025, 7, 1, tzinfo=UTC)
    Ingest({}, timedelta(days=7), TOLERANCE).process(SAMPLES, now)
    assert decided == []
    ModelPathIngest({}, timedelta(days=7), TOLERANCE).process(SAMPLES, now)
    assert decided == SAMPLES
