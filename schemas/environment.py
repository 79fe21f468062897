"""The `JOURNEYS_*` environment variables: which ones exist, and the nearest to a misspelt one.

Every setting is a variable (`JOURNEYS_` + its path joined by `__`, any case), and a section
may be given whole as JSON (`JOURNEYS_KAFKA='{...}'`). `OTHER_VARIABLES` lists, in one place,
the few that are read outside the settings object; alert routing files may reference more
(`${NAME}`), which are allowed by name. Anything else that starts with `JOURNEYS_` is a
mistake: `unknown_variables` finds them and `suggest` names the closest known variable.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

PREFIX = "JOURNEYS_"
DELIMITER = "__"

# Variables read outside the settings object, and who reads them.
OTHER_VARIABLES: dict[str, str] = {
    "JOURNEYS_SETTINGS_FILE": "the TOML settings file (schemas/settings.py)",
    "JOURNEYS_UI_SCREENSHOTS": "a folder for the page's screenshots (tests/integration)",
    "JOURNEYS_CLICKHOUSE_HOST": "Grafana's data source (deploy/grafana, docs/bi-tools.md)",
    "JOURNEYS_GRAFANA_PASSWORD": "Grafana's data source (deploy/grafana, docs/bi-tools.md)",
    "JOURNEYS_PURE_CORE": "retired with the compiled journey core; ignored",
}

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def setting_variables(model: type[BaseModel]) -> tuple[frozenset[str], frozenset[str]]:
    """The variables of every setting and section of `model`, and the ones naming a mapping
    (whose keys are the user's: anything below them is accepted)."""
    known: set[str] = set()
    open_ended: set[str] = set()
    _walk(model, PREFIX, known, open_ended)
    return frozenset(known), frozenset(open_ended)


def _walk(model: type[BaseModel], prefix: str, known: set[str], open_ended: set[str]) -> None:
    for field_name, field in model.model_fields.items():
        variable = prefix + field_name.upper()
        known.add(variable)
        section = _section(field.annotation)
        if section is not None:
            _walk(section, variable + DELIMITER, known, open_ended)
        elif _is_mapping(field.annotation):
            open_ended.add(variable)


def _section(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (also when it is optional), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [_section(arg) for arg in get_args(annotation)]
        return next((m for m in models if m is not None), None)
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = get_origin(annotation)
    return isinstance(origin, type) and issubclass(origin, Mapping)


def references(text: str) -> frozenset[str]:
    """The variables a file references as `${NAME}` (alert routing does)."""
    return frozenset(name.upper() for name in _REFERENCE.findall(text))


def unknown_variables(
    environ: Iterable[str], model: type[BaseModel], allowed: Iterable[str] = ()
) -> list[str]:
    """The `JOURNEYS_*` names in `environ` that are neither a setting of `model`, nor in
    `OTHER_VARIABLES`, nor `allowed`; sorted."""
    known, open_ended = setting_variables(model)
    fine = known | set(OTHER_VARIABLES) | {name.upper() for name in allowed}
    unknown = []
    for name in environ:
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in fine:
            continue
        if any(upper.startswith(parent + DELIMITER) for parent in open_ended):
            continue
        unknown.append(name)
    return sorted(unknown)


def suggest(name: str, model: type[BaseModel], allowed: Iterable[str] = ()) -> str | None:
    """The known (or `allowed`) variable nearest to `name`, if one is near enough."""
    known, _ = setting_variables(model)
    candidates = known | set(OTHER_VARIABLES) | {other.upper() for other in allowed}
    # Compared without the prefix all of them share, which would make anything look near.
    tails = {variable.removeprefix(PREFIX): variable for variable in candidates}
    close = difflib.get_close_matches(name.upper().removeprefix(PREFIX), sorted(tails), n=1)
    return tails[close[0]] if close else None


def unknown_message(name: str, model: type[BaseModel], allowed: Iterable[str] = ()) -> str:
    """One line for a variable nobody reads."""
    nearest = suggest(name, model, allowed)
    hint = (
        f"did you mean {nearest}?"
        if nearest
        else "the settings are listed in schemas/settings.py; others in schemas/environment.py"
    )
    return f"unknown environment variable {name}: {hint}"
