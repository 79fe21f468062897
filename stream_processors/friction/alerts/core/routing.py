"""The owning team of a series, and the webhooks its incidents go to (docs/concepts.md §6).

A series' scope is split into the dimensions a routing file matches on (the formats are
`series.py`'s):

| kind                 | scope                          | dimensions                 |
|----------------------|--------------------------------|----------------------------|
| `friction`           | `<channel>:<touchpoint>`       | channel, touchpoint        |
| `volume`             | `<channel>:<source>`           | channel, source            |
| `dropoff`, `entries` | `<journey>:<stage>:<channel>`  | journey, stage, channel    |

Touchpoints may hold `:` themselves (`/product/:id`), so a friction or volume scope is split
at its first colon only. A channel-wide friction series has touchpoint `*`, an all-channels
stage series channel `*`: a route's `touchpoint = "/checkout*"` does not take them, while
`"*"` does. The rules of precedence are in `schemas/alerting.py`.

Pure: a compiled routing file and a lookup, cached per series.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from schemas.alerting import AlertRouting, RouteSpec, WebhookTarget, is_glob
from stream_processors.friction.core.rules import Series

# Distinct series are bounded by the detector's, but a cache must not grow on junk scopes.
MAX_CACHED = 50_000


@dataclass(frozen=True, slots=True)
class Route:
    """Who owns a series and where its incidents are posted; `matched` names the route
    (`route[2] checkout` or `default`) for logs and the incident record, `name` as a silence
    names it (the route's `name`, else `route[2]`, or `default`); `runbook` and `dashboard`
    go into every page."""

    team: str
    targets: tuple[WebhookTarget, ...]
    matched: str
    name: str = "default"
    runbook: str | None = None
    dashboard: str | None = None


def dimensions(series: Series) -> dict[str, str]:
    """The values a route's patterns are matched against (see the module docstring)."""
    found = {"kind": series.kind}
    if series.kind in ("friction", "volume"):
        channel, sep, rest = series.scope.partition(":")
        if sep:
            found["channel"] = channel
            found["touchpoint" if series.kind == "friction" else "source"] = rest
    elif series.kind in ("dropoff", "entries"):
        parts = series.scope.split(":")
        if len(parts) == 3:
            found["journey"], found["stage"], found["channel"] = parts
    return found


def specificity(spec: RouteSpec) -> tuple[int, int, int]:
    """Keys given, keys without wildcards, literal characters: larger is more specific."""
    patterns = spec.patterns().values()
    literal_keys = sum(1 for p in patterns if not is_glob(p))
    literal_chars = sum(sum(1 for c in p if c not in "*?[]") for p in patterns)
    return len(patterns), literal_keys, literal_chars


class AlertRouter:
    """Routes series by a routing file: the most specific matching route, else the
    default."""

    def __init__(self, routing: AlertRouting) -> None:
        ranked = sorted(
            enumerate(routing.route),
            key=lambda item: (specificity(item[1]), -item[0]),
            reverse=True,
        )
        self._routes = [
            (tuple(spec.patterns().items()), _route(spec, f"route[{index}]"))
            for index, spec in ranked
        ]
        d = routing.default
        self._default = Route(d.team, d.targets(), "default", "default", d.runbook, d.dashboard)
        self._cache: dict[Series, Route] = {}

    @property
    def default(self) -> Route:
        return self._default

    def routes(self) -> list[Route]:
        """Every route, the default last (for `journeys alerts test` and silences)."""
        by_index = sorted(self._routes, key=lambda item: _index(item[1].matched))
        return [route for _, route in by_index] + [self._default]

    def named(self, name: str) -> Route | None:
        """The route a silence or a test names (its `name`, `route[N]` or `default`)."""
        return next((r for r in self.routes() if name in (r.name, r.matched)), None)

    def route(self, series: Series) -> Route:
        found = self._cache.get(series)
        if found is None:
            found = self._match(series)
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[series] = found
        return found

    def _match(self, series: Series) -> Route:
        values = dimensions(series)
        for patterns, route in self._routes:
            if all(
                key in values and fnmatchcase(values[key], pattern) for key, pattern in patterns
            ):
                return route
        return self._default


def _route(spec: RouteSpec, where: str) -> Route:
    matched = f"{where} {spec.name}" if spec.name else where
    return Route(
        spec.team, spec.targets(), matched, spec.name or where, spec.runbook, spec.dashboard
    )


def _index(matched: str) -> int:
    return int(matched[len("route[") :].split("]", 1)[0])
