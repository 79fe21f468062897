"""Cutting a batch ClickHouse refused into pieces, deterministically, and naming each piece.

A refused piece is split in two: a run of messages into halves by position (so by offset),
a single message into halves of its rows, down to one row. Pieces are tried depth first,
left to right. Each piece's deduplication token extends the batch's:
`<batch token>/<first offset>-<last offset>` for messages, `<batch token>/<offset>#<a>-<b>`
for rows a..b of one message. A sink restarted after a crash rebuilds the same batch, gets
the same refusals, cuts the same pieces with the same tokens, and ClickHouse drops the
pieces it already has.

What cannot be split further goes to the dead-letter topic: a single row, or a single
message whose rows are not well-formed JSON objects (nothing can tell where one ends).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Piece:
    """Messages `start..stop-1` of a batch (by position), or, when `rows` is set, rows
    `rows[0]..rows[1]-1` of message `start` (then `stop == start + 1`)."""

    start: int
    stop: int
    rows: tuple[int, int] | None = None

    @classmethod
    def whole(cls, messages: int) -> Piece:
        return cls(0, messages)

    def is_whole(self, messages: int) -> bool:
        return self.rows is None and (self.start, self.stop) == (0, messages)

    def token(self, batch_token: str, offsets: Sequence[int]) -> str:
        """The piece's insert deduplication token (the batch's own for the whole batch)."""
        if self.is_whole(len(offsets)):
            return batch_token
        if self.rows is not None:
            first, stop = self.rows
            return f"{batch_token}/{offsets[self.start]}#{first}-{stop - 1}"
        return f"{batch_token}/{offsets[self.start]}-{offsets[self.stop - 1]}"

    def offsets(self, offsets: Sequence[int]) -> tuple[int, int]:
        """The first and last source offsets the piece's rows come from."""
        return offsets[self.start], offsets[self.stop - 1]


def split(piece: Piece, message_rows: int | None) -> list[Piece]:
    """The two halves of a refused piece, or [] when it cannot be split further.

    `message_rows` is the number of rows of the piece's one message when it is a single
    message (None: its rows cannot be told apart); it is not read for several messages.
    """
    if piece.rows is None and piece.stop - piece.start > 1:
        middle = (piece.start + piece.stop) // 2
        return [Piece(piece.start, middle), Piece(middle, piece.stop)]
    first, stop = piece.rows if piece.rows is not None else (0, message_rows or 0)
    if stop - first <= 1:
        return []
    middle = (first + stop) // 2
    one = (piece.start, piece.stop)
    return [Piece(*one, rows=(first, middle)), Piece(*one, rows=(middle, stop))]


def is_single_message(piece: Piece) -> bool:
    return piece.rows is None and piece.stop - piece.start == 1


def piece_rows(
    piece: Piece, parts: Sequence[bytes], message_rows: Sequence[bytes] | None = None
) -> list[bytes]:
    """The piece's row fragments: whole messages' comma-joined rows, or, for a piece of
    rows, those of `message_rows` (the rows of its message, from `row_fragments`)."""
    if piece.rows is None:
        return [p for p in parts[piece.start : piece.stop] if p]
    assert message_rows is not None, "a piece of rows needs its message's rows"
    return list(message_rows[piece.rows[0] : piece.rows[1]])


def body(fragments: Sequence[bytes]) -> bytes:
    """Row fragments as one JSON array (ClickHouse's JSONEachRow accepts it)."""
    return b"[" + b",".join(fragments) + b"]"


# Strings (with their escapes) and the characters that open or close a value or separate
# two: everything else inside a row is skipped by the regular expression, not by Python.
_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\],]', re.DOTALL)


def row_fragments(rows: bytes) -> list[bytes] | None:
    """Split one message's comma-joined JSON objects (`{..},{..}`) into each object's bytes,
    unchanged; None when they are not a well-formed sequence of objects."""
    fragments: list[bytes] = []
    depth = 0
    start = 0
    for found in _STRUCTURE.finditer(rows):
        char = found.group()
        if char in (b"{", b"["):
            depth += 1
        elif char in (b"}", b"]"):
            depth -= 1
            if depth < 0:
                return None
        elif char == b"," and depth == 0:
            fragments.append(rows[start : found.start()])
            start = found.end()
    if depth != 0:
        return None
    fragments.append(rows[start:])
    stripped = [f.strip() for f in fragments]
    if not all(f.startswith(b"{") and f.endswith(b"}") for f in stripped):
        return None
    return fragments
