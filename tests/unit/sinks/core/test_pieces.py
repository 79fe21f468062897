"""sinks.core.pieces: a refused batch cut the same way every time, each piece named from the
batch's token, down to single rows."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

import orjson
import pytest

from sinks.core.pieces import Piece, body, is_single_message, piece_rows, row_fragments, split

TOKEN = "journeys.stitched/cfvJhsrESS29MwSYlhtGxw/3/100-107"
OFFSETS = [100, 101, 103, 104, 105, 106, 107, 108]  # 102 was a transaction marker


def test_messages_split_into_halves_by_position() -> None:
    assert split(Piece(0, 8), None) == [Piece(0, 4), Piece(4, 8)]
    assert split(Piece(4, 7), None) == [Piece(4, 5), Piece(5, 7)]


def test_a_single_message_splits_into_halves_of_its_rows() -> None:
    assert split(Piece(5, 6), 5) == [Piece(5, 6, (0, 2)), Piece(5, 6, (2, 5))]
    assert split(Piece(5, 6, (2, 5)), 5) == [Piece(5, 6, (2, 3)), Piece(5, 6, (3, 5))]


@pytest.mark.parametrize(
    ("piece", "message_rows"),
    [
        (Piece(5, 6, (2, 3)), 5),  # one row
        (Piece(5, 6), 1),  # a message of one row
        (Piece(5, 6), None),  # rows that cannot be told apart
    ],
)
def test_what_cannot_be_split(piece: Piece, message_rows: int | None) -> None:
    assert split(piece, message_rows) == []


def test_tokens_extend_the_batch_token() -> None:
    assert Piece.whole(8).token(TOKEN, OFFSETS) == TOKEN
    assert Piece(0, 4).token(TOKEN, OFFSETS) == f"{TOKEN}/100-104"
    assert Piece(4, 5).token(TOKEN, OFFSETS) == f"{TOKEN}/105-105"
    assert Piece(4, 5, (0, 2)).token(TOKEN, OFFSETS) == f"{TOKEN}/105#0-1"
    assert Piece(4, 5, (2, 3)).token(TOKEN, OFFSETS) == f"{TOKEN}/105#2-2"
    assert Piece(4, 5, (2, 3)).offsets(OFFSETS) == (105, 105)
    assert Piece(0, 4).offsets(OFFSETS) == (100, 104)


def test_a_one_message_batch_is_whole_and_its_rows_are_named_by_offset() -> None:
    assert Piece.whole(1).token(TOKEN, [42]) == TOKEN
    assert is_single_message(Piece.whole(1))
    assert split(Piece.whole(1), 3)[0].token(TOKEN, [42]) == f"{TOKEN}/42#0-0"


# -- a whole refusal, driven as the sink drives it ---------------------------------------


def settle(
    parts: list[bytes], refuses: Callable[[list[bytes]], bool]
) -> tuple[list[tuple[str, list[bytes]]], list[tuple[str, list[bytes]]]]:
    """The sink's loop over one batch: (inserted, dead-lettered) pieces as (token, rows)."""
    offsets = [100 + i for i in range(len(parts))]
    rows = [row_fragments(p) for p in parts]
    pieces = deque([Piece.whole(len(parts))])
    inserted, dead = [], []
    while pieces:
        piece = pieces.popleft()
        fragments = piece_rows(piece, parts, rows[piece.start])
        if not fragments:
            continue
        token = piece.token(TOKEN, offsets)
        if not refuses(fragments):
            inserted.append((token, fragments))
            continue
        one = rows[piece.start]
        halves = split(piece, None if one is None else len(one))
        if halves:
            pieces.extendleft(reversed(halves))
        else:
            dead.append((token, fragments))
    return inserted, dead


def message(*rows: Mapping[str, object]) -> bytes:
    return b",".join(orjson.dumps(r) for r in rows)


def inserted_rows(inserted: list[tuple[str, list[bytes]]]) -> list[object]:
    return [row for _t, f in inserted for row in orjson.loads(body(f))]


def test_one_poison_row_is_dead_lettered_alone_and_every_other_row_inserted() -> None:
    parts = [message(*({"i": 10 * m + r} for r in range(4))) for m in range(6)]
    poison = b'{"i":"poison"}'
    parts[3] = b",".join([b'{"i":30}', poison, b'{"i":32}'])
    refuses = lambda fragments: any(b"poison" in f for f in fragments)  # noqa: E731
    inserted, dead = settle(parts, refuses)
    assert dead == [(f"{TOKEN}/103#1-1", [poison])]
    want = [r for p in parts for r in orjson.loads(b"[" + p + b"]") if r != {"i": "poison"}]
    assert inserted_rows(inserted) == want
    tokens = [t for t, _ in inserted] + [t for t, _ in dead]
    assert len(set(tokens)) == len(tokens)
    assert settle(parts, refuses) == (inserted, dead)  # a restart cuts the same pieces


def test_too_many_partitions_splits_until_each_piece_fits_with_no_dead_letter() -> None:
    parts = [message({"month": m}) for m in range(101)]
    refuses = lambda fragments: len(fragments) > 100  # noqa: E731
    inserted, dead = settle(parts, refuses)
    assert dead == []
    assert [t for t, _ in inserted] == [f"{TOKEN}/100-149", f"{TOKEN}/150-200"]
    assert inserted_rows(inserted) == [{"month": m} for m in range(101)]


def test_a_message_whose_rows_cannot_be_told_apart_is_dead_lettered_whole() -> None:
    parts = [message({"i": 1}), b'{"i": ]', message({"i": 3})]
    inserted, dead = settle(parts, lambda fragments: any(b"]" in f for f in fragments))
    assert dead == [(f"{TOKEN}/101-101", [b'{"i": ]'])]
    assert inserted_rows(inserted) == [{"i": 1}, {"i": 3}]


# -- rows told apart ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "fragments"),
    [
        (b'{"a":1}', [b'{"a":1}']),
        (b'{"a":1},{"b":[1,2,{"c":"}"}]}', [b'{"a":1}', b'{"b":[1,2,{"c":"}"}]}']),
        (b'{"s":"a,b\\",{"},{"t":2}', [b'{"s":"a,b\\",{"}', b'{"t":2}']),
        (b'{ "x" : 1 } , {"y":2}', [b'{ "x" : 1 } ', b' {"y":2}']),
    ],
    ids=["one", "nested", "commas-and-quotes-in-strings", "spaces-kept"],
)
def test_row_fragments_are_byte_slices(rows: bytes, fragments: list[bytes]) -> None:
    assert row_fragments(rows) == fragments
    assert b",".join(fragments) == rows


@pytest.mark.parametrize("rows", [b'{"a":1', b'{"a":1}}', b"[1,2]", b"not json", b"", b"1,2"])
def test_row_fragments_of_what_is_not_a_row_sequence(rows: bytes) -> None:
    assert row_fragments(rows) is None


def test_piece_rows_skips_messages_without_rows() -> None:
    parts = [b'{"a":1}', b"", b'{"b":2},{"c":3}']
    assert piece_rows(Piece(0, 3), parts) == [b'{"a":1}', b'{"b":2},{"c":3}']
    assert piece_rows(Piece(2, 3, (1, 2)), parts, [b'{"b":2}', b'{"c":3}']) == [b'{"c":3}']
    assert orjson.loads(body(piece_rows(Piece(0, 3), parts))) == [{"a": 1}, {"b": 2}, {"c": 3}]
