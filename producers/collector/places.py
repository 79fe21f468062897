"""Where a call happened: the touchpoint's `touchpoint`, per channel and source.

Pure. Each channel has an ordered list of fields of the call, dotted paths into it; the first
one present wins. By default a web event happens at its page's path and an app event at its
screen (the `name` of a screen call, `context.screen.name`, `properties.screen`); a source
can give any channel its own list (`collector.sources.<key>.touchpoint`). A URL found there
counts by its path; a path loses its query string and fragment, which are attribution's
business (`attribution`), not a place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from schemas.touchpoint import Channel

DEFAULT_FIELDS: Mapping[Channel, tuple[str, ...]] = {
    Channel.WEB: (
        "properties.path",
        "context.page.path",
        "context.page.url",
        "properties.url",
        "name",
    ),
    Channel.APP: ("name", "context.screen.name", "properties.screen", "context.page.path"),
    Channel.CALL_CENTER: ("context.page.path", "name"),
    Channel.STORE: ("context.page.path", "name"),
}


class TouchpointFields:
    """The ordered fields a source takes each channel's touchpoint from."""

    __slots__ = ("_paths",)

    def __init__(self, declared: Mapping[Any, Sequence[str]] | None = None) -> None:
        fields = {**DEFAULT_FIELDS, **{Channel(k): tuple(v) for k, v in (declared or {}).items()}}
        self._paths = {
            channel: tuple(tuple(path.split(".")) for path in paths)
            for channel, paths in fields.items()
        }

    def of(self, msg: dict[str, Any], channel: Channel) -> str | None:
        """The call's touchpoint on `channel`, as found (not yet scrubbed or bounded)."""
        for path in self._paths[channel]:
            found = _place(_at(msg, path))
            if found is not None:
                return found
        return None

    def field_of(self, msg: dict[str, Any], channel: Channel) -> str:
        """The dotted field `of` took the call's touchpoint from, to name it in a refusal."""
        for path in self._paths[channel]:
            if _place(_at(msg, path)) is not None:
                return ".".join(path)
        return "(touchpoint)"


def _at(msg: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = msg
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _place(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith(("http://", "https://")):
        try:
            text = urlsplit(text).path or "/"
        except ValueError:
            return None
    elif text.startswith("/"):
        text = text.split("?", 1)[0].split("#", 1)[0]
    return text or None
