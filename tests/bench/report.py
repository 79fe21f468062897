"""Bench results: a figure, its unit, the baseline measured in the same run, and a target."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Result:
    name: str
    value: float
    unit: str
    baseline: float | None
    target: str = ""

    @property
    def ratio(self) -> str:
        return f"{self.value / self.baseline:.2f}x" if self.baseline else ""


def render(results: list[Result]) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"{'benchmark':<{width}}  {'figure':>14}  {'unit':<9} {'vs baseline':>11}  target"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.value:>14,.1f}  {r.unit:<9} {r.ratio:>11}  {r.target}")
    return "\n".join(lines)


def save(results: list[Result], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in results], indent=2))
