"""The collector's fast paths give exactly what the slow ones give: `to_fragment` (which
skips the pydantic model when `wire` can vouch for a document) against `to_touchpoint`, and
the scrubber's shortcut for texts with nothing to hash against the full rules."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from producers.collector.auth import Source
from producers.collector.protocol import CALLS
from producers.collector.scrub import Scrubber
from producers.collector.segment import Encoded, Problem, Rejected, to_fragment, to_touchpoint
from schemas.touchpoint import Channel
from tests.property.test_collector_properties import FAST, segmentish, valid_calls
from tests.unit.producers.collector.builders import HASHER, WEB, received

APP = Source("wk_app", "shop-app", Channel.APP)
odd_times = st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat())
whitespace_texts = st.text(" \t\u00a0\u2003x", min_size=1, max_size=4)
edge_values = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    whitespace_texts,
    st.text(min_size=1000, max_size=1100),
    st.text(min_size=120, max_size=300),
)
edgy_calls = st.fixed_dictionaries(
    {"type": st.sampled_from(CALLS)},
    optional={
        "userId": whitespace_texts | edge_values,
        "anonymousId": st.text(min_size=250, max_size=260),
        "event": whitespace_texts | st.text(min_size=125, max_size=135),
        "name": whitespace_texts | edge_values,
        "timestamp": odd_times,
        "originalTimestamp": odd_times,
        "messageId": st.uuids().map(lambda u: str(u).upper()) | st.uuids().map(str),
        "properties": st.dictionaries(whitespace_texts | st.text(max_size=130), edge_values),
        "context": st.fixed_dictionaries({}, optional={"sessionId": edge_values}),
    },
)


def outcome(mapping: Any, msg: dict[str, Any], call: str, source: Source) -> Any:
    try:
        return mapping(msg, call, received(source), Scrubber(HASHER))
    except Rejected as rejected:
        return rejected.problem


@FAST
@given(segmentish | valid_calls | edgy_calls, st.sampled_from([WEB, APP]))
def test_the_fast_encoding_is_the_models(msg: dict[str, Any], source: Source) -> None:
    call = msg.get("type") if msg.get("type") in CALLS else "track"
    slow = outcome(to_touchpoint, msg, str(call), source)
    fast = outcome(to_fragment, msg, str(call), source)
    if isinstance(slow, Problem):
        event("refused")
        assert fast == slow
        return
    event("accepted")
    assert isinstance(fast, Encoded)
    assert fast.fragment == slow.event.model_dump_json().encode()
    assert fast.key == slow.event.identity.partition_key()
    assert fast.notes == slow.notes


phone_ish = st.text("0123456789 +-().@%4/ab", max_size=30)


@FAST
@given(st.one_of(st.text(max_size=40), phone_ish, st.emails(), st.from_regex(r"\+?[\d ]{8,20}")))
def test_texts_the_scrubber_skips_are_texts_it_would_leave_alone(text: str) -> None:
    scrubber = Scrubber(HASHER)
    assert scrubber.text(text) == scrubber.hashed(text)
    assert scrubber.text(text) == scrubber.text(text)  # the second time from its cache
