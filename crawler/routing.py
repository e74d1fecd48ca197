"""Routing hints: which body is responsible for a case, by topic and municipality.

The ``routing:`` section of sources.yaml lists rules; each names a topic code, a
municipality or both, and the agency responsible. For a case (its topics best first and its
municipality) the first topic any rule names decides; among that topic's rules one naming
the case's municipality wins over one that does not. Rules naming only a municipality come
next, then ``default``. A case nothing matches is ``unmatched`` (no agency).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from pydantic import Field, model_validator

from crawler.model import Strict

MATCHED, DEFAULT, UNMATCHED = "rule", "default", "unmatched"


class RoutingRule(Strict):
    """One rule: a topic code and/or a municipality, and who handles such cases."""

    topic: str | None = Field(
        None, min_length=1, description="Topic code (see the topics lexicon), e.g. roads."
    )
    municipality: str | None = Field(
        None, min_length=1, description="Municipality as flagging names it, e.g. Кировский район."
    )
    agency: str = Field(
        ..., min_length=1, description="The responsible body, as routing tools know it."
    )

    @model_validator(mode="after")
    def _says_what_it_routes(self) -> RoutingRule:
        if self.topic is None and self.municipality is None:
            raise ValueError("a rule needs 'topic', 'municipality' or both besides 'agency'")
        return self


class RoutingSettings(Strict):
    """The ``routing:`` section of sources.yaml."""

    rules: list[RoutingRule] = Field(
        default_factory=list, description="Topic/municipality → agency; more specific wins."
    )
    default: str | None = Field(
        None, min_length=1, description="Agency of cases no rule matches (none: 'unmatched')."
    )


class Route(NamedTuple):
    """Where a case goes: the agency (None when unmatched) and how it was chosen."""

    agency: str | None
    how: str  # rule | default | unmatched


def _fold(text: str | None) -> str:
    return " ".join((text or "").lower().replace("ё", "е").split())


class Router:
    """Applies :class:`RoutingSettings` to cases."""

    def __init__(self, settings: RoutingSettings | None = None) -> None:
        settings = settings or RoutingSettings()
        self.default = settings.default
        self.by_topic: dict[str, list[RoutingRule]] = {}
        self.by_municipality: dict[str, str] = {}
        for rule in settings.rules:
            if rule.topic is not None:
                self.by_topic.setdefault(rule.topic, []).append(rule)
            else:
                self.by_municipality.setdefault(_fold(rule.municipality), rule.agency)

    def route(self, topics: Sequence[str] | None, municipality: str | None) -> Route:
        place = _fold(municipality)
        for topic in topics or ["other"]:
            rules = self.by_topic.get(topic)
            if not rules:
                continue
            local = [r for r in rules if r.municipality and _fold(r.municipality) == place]
            if local:
                return Route(local[0].agency, MATCHED)
            general = [r for r in rules if r.municipality is None]
            if general:
                return Route(general[0].agency, MATCHED)
        if place and place in self.by_municipality:
            return Route(self.by_municipality[place], MATCHED)
        if self.default:
            return Route(self.default, DEFAULT)
        return Route(None, UNMATCHED)


def topic_labels(overrides: Sequence[Path] = ()) -> dict[str, str]:
    """Topic code → Russian label, from the shipped topics lexicon and its overrides.

    A broken override (reported by ``glas check``) falls back to the shipped lexicon.
    """
    from flagging.lexicon import LexiconError, load

    try:
        codes = load(overrides)["topics"].get("codes") or {}
    except LexiconError:
        codes = load()["topics"].get("codes") or {}
    labels = {str(code): str((spec or {}).get("label", code)) for code, spec in codes.items()}
    labels.setdefault("other", "другое")
    return labels
