"""The likely cause of an alert: which friction signals rose with it, and what the journeys
that dropped had seen (docs/concepts.md §6).

Inputs are plain counts the caller already has, nothing is learned here:

- `now`: per friction scope (`"web:/checkout"`), the counters of the alert's window(s), as
  `WindowCounts.counts` holds them: `exposures` and one count per signal (summed over the
  windows of the evidence when there are two).
- `before`: the same scopes and counters summed over reference windows before the incident
  (for example the twelve windows before its start). A signal's baseline is its count per
  exposure there; a scope without exposures compares counts per window instead
  (`now_windows`, `before_windows`). A signal never seen before counts as half a signal in
  the reference, so that "new" reads as a large rise, not an infinite one.
- optionally `dropped`: per label, how many of the `dropped_total` journeys that dropped
  off saw it. Labels are the caller's: a signal name, or finer, an event and property
  (`"Payment Failed / card_declined"`).

Which scopes to pass is the caller's choice too: the alert's own touchpoint and the ones
before it in the same channel or journey (for a drop-off at `purchase:checkout:web`, the
friction scopes `web:/checkout` and `web:/cart`, say). The scope-wide `friction` counter
and positive moments are never a cause.

A signal rose when it has at least `min_count` hits, `min_ratio` times its expectation, and
a Poisson upper tail below `alpha`; rises are ranked by excess hits (observed - expected),
which is how much of the trouble each one explains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.friction import POSITIVE_SIGNALS
from stream_processors.friction.core.baselines import poisson_upper
from stream_processors.friction.core.rules import Series
from stream_processors.friction.core.series import ANY_FRICTION, EXPOSURES

Counts = Mapping[str, Mapping[str, int]]  # scope -> counter name -> count
_NOT_CAUSES = frozenset({EXPOSURES, ANY_FRICTION}) | {s.value for s in POSITIVE_SIGNALS}


@dataclass(frozen=True, slots=True)
class CauseConfig:
    min_count: int = 3  # hits a signal needs to be named
    min_ratio: float = 1.5  # ... times its expectation
    alpha: float = 0.01  # ... with a Poisson tail this small
    min_share: float = 0.2  # a label seen by fewer of the dropped journeys is not named
    top: int = 3  # rises named in the sentence


@dataclass(frozen=True, slots=True)
class Rise:
    """One signal at one scope that rose: its count, its expectation and by how much."""

    scope: str
    signal: str
    observed: int
    expected: float
    p_value: float

    @property
    def excess(self) -> float:
        return self.observed - self.expected

    @property
    def ratio(self) -> float:
        return self.observed / self.expected


@dataclass(frozen=True, slots=True)
class Seen:
    """A label seen by `journeys` of the dropped journeys."""

    label: str
    journeys: int
    share: float


@dataclass(frozen=True, slots=True)
class Cause:
    rises: tuple[Rise, ...]  # ranked, the likeliest first
    seen: tuple[Seen, ...]  # by share, the largest first
    sentence: str


def rises(
    now: Counts,
    before: Counts,
    config: CauseConfig | None = None,
    *,
    now_windows: int = 1,
    before_windows: int = 1,
) -> list[Rise]:
    """The signals of `now` that rose against `before` (see the module docstring), ranked."""
    cfg = config or CauseConfig()
    found = []
    for scope, counts in now.items():
        reference = before.get(scope, {})
        for signal, observed in counts.items():
            if signal in _NOT_CAUSES or observed < cfg.min_count:
                continue
            expected = _expected(signal, counts, reference, now_windows, before_windows)
            if observed < cfg.min_ratio * expected:
                continue
            p = poisson_upper(observed, expected)
            if p <= cfg.alpha:
                found.append(Rise(scope, signal, observed, expected, p))
    found.sort(key=lambda r: (-r.excess, -r.ratio, r.scope, r.signal))
    return found


def _expected(
    signal: str,
    now: Mapping[str, int],
    before: Mapping[str, int],
    now_windows: int,
    before_windows: int,
) -> float:
    hits = max(before.get(signal, 0), 0.5)
    exposures_now, exposures_before = now.get(EXPOSURES, 0), before.get(EXPOSURES, 0)
    if exposures_now > 0 and exposures_before > 0:
        return hits / exposures_before * exposures_now
    return hits / max(before_windows, 1) * now_windows


def seen_by_dropped(
    dropped: Mapping[str, int], dropped_total: int, config: CauseConfig | None = None
) -> list[Seen]:
    """The labels seen by at least `min_share` of the dropped journeys, largest first."""
    cfg = config or CauseConfig()
    if dropped_total <= 0:
        return []
    shares = [Seen(label, n, min(n / dropped_total, 1.0)) for label, n in dropped.items()]
    kept = [s for s in shares if s.share >= cfg.min_share and s.journeys > 0]
    kept.sort(key=lambda s: (-s.share, s.label))
    return kept


def likely_cause(
    where: str,
    now: Counts,
    before: Counts,
    *,
    dropped: Mapping[str, int] | None = None,
    dropped_total: int = 0,
    dropped_who: str | None = None,
    now_windows: int = 1,
    before_windows: int = 1,
    config: CauseConfig | None = None,
) -> Cause:
    """What rose with the alert at `where` (a place as people say it: `place(series)`), and
    one sentence for the incident: "82% of journeys that dropped at web checkout saw
    Payment Failed / card_declined; rose with it: payment_declined at web:/checkout 41 vs
    3.2 expected". Without dropped journeys only the rises are named. `dropped_who` names
    the dropped journeys when they are not those of `where` (default: "journeys that
    dropped at <where>")."""
    cfg = config or CauseConfig()
    found = rises(now, before, cfg, now_windows=now_windows, before_windows=before_windows)
    seen = seen_by_dropped(dropped or {}, dropped_total, cfg)
    parts = []
    if seen:
        top = seen[0]
        who = dropped_who or f"journeys that dropped at {where}"
        parts.append(f"{top.share:.0%} of {who} saw {top.label}")
    if found:
        named = ", ".join(_rise_text(r) for r in found[: cfg.top])
        parts.append(f"rose with it: {named}")
    if not parts:
        parts.append(f"no friction signal at or before {where} rose with it")
    return Cause(tuple(found), tuple(seen), "; ".join(parts))


def _rise_text(rise: Rise) -> str:
    return f"{rise.signal} at {rise.scope} {rise.observed} vs {rise.expected:.1f} expected"


def place(series: Series) -> str:
    """A series' place as people say it: `web /checkout`, `web checkout` (a stage of a
    journey on one channel), `checkout (all channels)`, `web (all touchpoints)`."""
    parts = series.scope.split(":")
    if series.kind in ("dropoff", "entries") and len(parts) == 3:
        _journey, stage, channel = parts
        return f"{stage} (all channels)" if channel == "*" else f"{channel} {stage}"
    channel, _, rest = series.scope.partition(":")
    if series.kind == "friction" and rest == "*":
        return f"{channel} (all touchpoints)"
    return f"{channel} {rest}" if rest else series.scope
