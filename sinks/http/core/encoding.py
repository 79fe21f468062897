"""HTTP content codings of bodies: the response in the coding the client prefers (when it
asked with `enable_http_compression=1`), and a request body in the coding it names.

The codings are those ClickHouse's clients use: lz4 (the frame format), zstd, gzip, deflate.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import lz4.frame
import zstandard

from sinks.http.core.errors import QueryError
from sinks.http.core.request import preferred_encodings

_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": lz4.frame.compress,
    "zstd": lambda data: zstandard.ZstdCompressor(level=3).compress(data),
    "gzip": lambda data: gzip.compress(data, compresslevel=3, mtime=0),
    "deflate": lambda data: zlib.compress(data, 3),
}
_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": lz4.frame.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
    "gzip": gzip.decompress,
    "x-gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "identity": lambda data: data,
    "": lambda data: data,
}


def response_coding(asked: bool, accept_encoding: str) -> str | None:
    """The coding to answer in, or None for a plain body."""
    if not asked:
        return None
    return next((name for name in preferred_encodings(accept_encoding) if name in _COMPRESS), None)


def encode(body: bytes, coding: str | None) -> bytes:
    return body if coding is None else _COMPRESS[coding](body)


class Encoder:
    """A body encoded as it is produced, piece by piece (a streamed result)."""

    def __init__(self, coding: str | None) -> None:
        self._feed: Callable[[bytes], bytes]
        self._finish: Callable[[], bytes]
        if coding in ("gzip", "deflate"):
            zlib_stream = zlib.compressobj(3, zlib.DEFLATED, 31 if coding == "gzip" else 15)
            self._feed, self._finish = zlib_stream.compress, zlib_stream.flush
        elif coding == "zstd":
            zstd_stream = zstandard.ZstdCompressor(level=3).compressobj()
            self._feed, self._finish = zstd_stream.compress, zstd_stream.flush
        elif coding == "lz4":
            lz4_stream = lz4.frame.LZ4FrameCompressor()
            header = [lz4_stream.begin()]
            self._feed = lambda data: (header.pop() if header else b"") + lz4_stream.compress(data)
            self._finish = lambda: (header.pop() if header else b"") + lz4_stream.flush()
        else:
            self._feed, self._finish = bytes, bytes

    def feed(self, data: bytes) -> bytes:
        return self._feed(data)

    def finish(self) -> bytes:
        return self._finish()


def decode(body: bytes, coding: str) -> bytes:
    """A request body in plain bytes, or an error naming the coding."""
    decompress = _DECOMPRESS.get(coding)
    if decompress is None:
        raise QueryError.of(
            48, f"Content-Encoding {coding!r} is not supported (use {', '.join(_COMPRESS)})"
        )
    try:
        return decompress(body)
    except Exception as exc:  # each library raises its own error type for a corrupt body
        raise QueryError.of(
            27, f"The request body is not valid {coding} ({str(exc)[:120]})"
        ) from None
