"""Collectors, one module per source type, found without registration.

A module here is a source type when it defines ``Options`` (a subclass of
:class:`crawler.model.SourceConfig` whose ``type`` is a ``Literal`` of the type's name) and
either ``Spider`` (a Scrapy spider, run inside the shared reactor) or ``collect`` (a plain
function for API clients). See ``spiders/base.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from dataclasses import dataclass
from functools import cache
from types import ModuleType


@dataclass(frozen=True)
class SourceType:
    """One ``type:`` value of sources.yaml and the module that collects it."""

    name: str
    module: ModuleType

    @property
    def options(self) -> type:
        return self.module.Options

    @property
    def platform(self) -> str:
        return self.module.Options.platform

    @property
    def uses_scrapy(self) -> bool:
        return hasattr(self.module, "Spider")


@cache
def source_types() -> dict[str, SourceType]:
    """Every source type in this package, by name."""
    found: dict[str, SourceType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        options = getattr(module, "Options", None)
        if options is None:
            continue
        literal = options.model_fields["type"].annotation
        (name,) = typing.get_args(literal)
        found[name] = SourceType(name, module)
    return found
