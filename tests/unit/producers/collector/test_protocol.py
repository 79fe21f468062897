"""Routes, body decoding and size limits of the tracking API."""

from __future__ import annotations

import gzip
import zlib

import pytest

from producers.collector.protocol import (
    BATCH,
    ROUTES,
    HttpError,
    Limits,
    decode_body,
    messages_of,
    parse_json,
)


def error(fn: object, *args: object) -> HttpError:
    with pytest.raises(HttpError) as caught:
        fn(*args)  # type: ignore[operator]
    return caught.value


def test_routes_cover_segment_and_rudderstack_paths() -> None:
    for call in ("track", "identify", "page", "screen", "alias", "group"):
        assert ROUTES[f"/v1/{call}"] == call
        assert ROUTES[f"/v1/{call[0]}"] == call  # analytics.js
    for path in ("/v1/batch", "/v1/b", "/v1/import", "/beacon/v1/batch"):
        assert ROUTES[path] == BATCH


def test_limits_per_route() -> None:
    limits = Limits(max_event_bytes=32_768, max_batch_bytes=500_000)
    assert limits.for_route("track") == 32_768
    assert limits.for_route(BATCH) == 500_000


def test_plain_bodies_pass_up_to_the_limit() -> None:
    assert decode_body(b"x" * 100, None, 100) == b"x" * 100
    err = error(decode_body, b"x" * 101, "identity", 100)
    assert (err.status, err.field) == (413, "body")
    assert "larger than 100 bytes" in err.message


def test_gzip_bodies_are_inflated() -> None:
    assert decode_body(gzip.compress(b'{"a":1}'), "gzip", 100) == b'{"a":1}'
    assert decode_body(gzip.compress(b"{}"), "x-gzip", 100) == b"{}"


def test_a_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"0" * 50_000_000)
    err = error(decode_body, bomb, "gzip", 500_000)
    assert err.status == 413 and "decompressed" in err.message


@pytest.mark.parametrize(
    ("body", "says"),
    [(b"not gzip", "not valid gzip"), (gzip.compress(b"{}" * 1000)[:20], "truncated")],
)
def test_broken_gzip_is_400(body: bytes, says: str) -> None:
    err = error(decode_body, body, "gzip", 100_000)
    assert err.status == 400 and says in err.message


def test_other_encodings_are_415() -> None:
    err = error(decode_body, zlib.compress(b"{}"), "br", 100)
    assert (err.status, err.field) == (415, "Content-Encoding")


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        (b"", "malformed_json", "empty"),
        (b"{", "malformed_json", "not valid JSON"),
        (b"[1]", "not_an_object", "got list"),
        (b'"x"', "not_an_object", "got str"),
    ],
)
def test_json_problems_are_400_naming_the_body(body: bytes, code: str, says: str) -> None:
    err = error(parse_json, body)
    assert (err.status, err.code, err.field) == (400, code, "body")
    assert says in err.message


@pytest.mark.parametrize(
    ("doc", "says"),
    [({}, "required"), ({"batch": {}}, "must be a list"), ({"batch": []}, "is empty")],
)
def test_batch_problems_name_the_batch_field(doc: dict[str, object], says: str) -> None:
    err = error(messages_of, doc, BATCH)
    assert (err.status, err.field) == (400, "batch") and says in err.message


def test_a_single_call_is_its_own_body() -> None:
    assert messages_of({"event": "x"}, "track") == [{"event": "x"}]


def test_error_bodies_carry_segments_code_and_message() -> None:
    err = HttpError(400, "invalid_field", "is empty", "batch")
    assert err.body() == {
        "success": False,
        "code": "invalid_field",
        "message": "is empty",
        "field": "batch",
    }
