"""What one source declares about its calls, read once from its settings: which traits carry
identifiers (`identifiers`), where its events happen (`places`) and what attribution keeps
(`attribution`). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from producers.collector.attribution import AttributionRules
from producers.collector.identifiers import IdentifierTraits
from producers.collector.places import TouchpointFields
from schemas.settings import CollectorSource


@dataclass(frozen=True, slots=True)
class SourceRules:
    identifiers: IdentifierTraits = field(default_factory=IdentifierTraits)
    touchpoint: TouchpointFields = field(default_factory=TouchpointFields)
    attribution: AttributionRules = field(default_factory=AttributionRules)

    @classmethod
    def from_settings(cls, source: CollectorSource) -> SourceRules:
        return cls(
            IdentifierTraits(source.identifiers),
            TouchpointFields(source.touchpoint),
            AttributionRules(frozenset(source.query_allowlist), source.ip),
        )
