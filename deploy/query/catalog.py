"""Which journey definitions and stages a ClickHouse database knows, in stage order, and the
checks that turn a misspelt `--definition` or `--stage` into a one-line error."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from deploy.query.options import QueryError


@dataclass(frozen=True)
class Catalog:
    """Definition id -> its stages in order (the ordered path, then failure stages)."""

    stages: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, recorded: Iterable[tuple[str, int, str, int]], seen: Iterable[tuple[str, str]]
    ) -> Catalog:
        """From `journey_definitions` rows (definition, version, stage, index: the newest
        version gives the order) and the (definition, stage) pairs the journeys reached, so a
        definition that was never recorded still counts, its stages in the order first seen."""
        newest: dict[str, int] = {}
        rows = list(recorded)
        for definition, version, _stage, _index in rows:
            newest[definition] = max(version, newest.get(definition, version))
        ordered = sorted((d, i, s) for d, v, s, i in rows if v == newest[d])
        stages: dict[str, list[str]] = {}
        for definition, _index, stage in ordered:
            stages.setdefault(definition, []).append(stage)
        for definition, stage in seen:
            known = stages.setdefault(definition, [])
            if stage not in known:
                known.append(stage)
        return cls(stages)

    def check_definition(self, definition: str | None) -> None:
        if definition is not None and definition not in self.stages:
            known = ", ".join(sorted(self.stages)) or "none yet"
            raise QueryError(f"unknown definition {definition!r} (known: {known})")

    def check_stage(self, definition: str | None, stage: str | None) -> None:
        """A stage of `definition` (of any definition when none is given)."""
        self.check_definition(definition)
        if stage is None:
            return
        chosen = [definition] if definition else sorted(self.stages)
        if not any(stage in self.stages[d] for d in chosen):
            where = f"of {definition!r}" if definition else "of any definition"
            known = ", ".join(s for d in chosen for s in self.stages[d])
            raise QueryError(f"unknown stage {stage!r} {where} (stages: {known})")

    def position(self, definition: str, stage: str) -> int:
        """Where a stage sorts within its definition (unknown ones last)."""
        known = self.stages.get(definition, [])
        return known.index(stage) if stage in known else len(known)
