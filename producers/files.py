"""Publishing from files and iterables, with per-line errors and progress on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import orjson
from pydantic import ValidationError

from producers.pii import PiiHasher
from producers.publisher import Publisher
from producers.synthetic import Item
from schemas.settings import Settings
from schemas.topics import Topics
from schemas.touchpoint import Touchpoint


class Progress:
    """Prints `label: n/total (rate/s)` to stderr at most twice a second."""

    def __init__(self, label: str, total: int | None = None, stream: IO[str] = sys.stderr) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.started = self._last = time.monotonic()

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        rate = done / max(now - self.started, 1e-9)
        of = f"/{self.total:,}" if self.total else ""
        self.stream.write(f"\r{self.label}: {done:,}{of} ({rate:,.0f}/s)")
        if force:
            self.stream.write("\n")
        self.stream.flush()


def publisher(settings: Settings) -> Publisher:
    return Publisher(settings.kafka, Topics.from_settings(settings.topics).raw, settings.batch)


def publish_file(settings: Settings, path: Path, *, backfill: bool = False) -> int:
    """Publish a JSON Lines file of touchpoints; report bad lines by number, keep going.
    Returns 0 when every line was published, 1 when some were rejected. `backfill` flags
    every event as history (`journeys publish --history`)."""
    pub = publisher(settings)
    pii = PiiHasher(settings.pii)
    progress = Progress(f"publish {path}")
    bad = sent = 0
    with sys.stdin.buffer if str(path) == "-" else open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            problem = _publish_line(pub, pii, line, backfill)
            if problem:
                bad += 1
                print(f"{path}:{number}: {problem}", file=sys.stderr)
            else:
                sent += 1
            progress.update(sent)
    pub.flush()
    progress.update(sent, force=True)
    print(f"published {sent:,} events, rejected {bad:,} lines", file=sys.stderr)
    return 1 if bad else 0


def _publish_line(
    pub: Publisher, pii: PiiHasher, line: bytes, backfill: bool = False
) -> str | None:
    try:
        # Contact details in the event's texts are hashed before it leaves (producers/pii.py).
        event = Touchpoint.model_validate(pii.document(orjson.loads(line)))
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({exc})"
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(line)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    if backfill:
        event.backfill = True
    pub.publish(event)
    return None


def publish_items(settings: Settings, items: Iterable[Item], total: int | None = None) -> int:
    """Publish synthetic items as they are (invalid ones too, for the pipeline to reject).
    Malformed payloads go as bare messages, as a foreign client would send them."""
    pub = publisher(settings)
    progress = Progress("generate", total)
    count = 0
    for item in items:
        if item.raw is not None:
            pub.publish_bare(item.key, item.raw)
        else:
            pub.publish_fragment(item.key, orjson.dumps(item.event))
        count += 1
        progress.update(count)
    pub.flush()
    progress.update(count, force=True)
    return count
