"""The README keeps up with the code: every command, every sources.yaml key, every type."""

from __future__ import annotations

import argparse
import re

import pytest

from crawler.cli import build_parser
from crawler.config import Defaults, OfficialAccounts, load_config
from crawler.model import SourceConfig
from spiders import source_types
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = []
    for name, child in sub.choices.items():
        nested = [a for a in child._actions if isinstance(a, argparse._SubParsersAction)]
        names += [f"{name} {n}" for n in nested[0].choices] if nested else [name]
    return names


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_documented(command: str) -> None:
    assert f"`glas {command}" in README


@pytest.mark.parametrize("model", [Defaults, OfficialAccounts, SourceConfig])
def test_every_common_key_is_documented(model: type) -> None:
    for key in model.model_fields:
        assert f"`{key}`" in README, f"{model.__name__}.{key} is missing from README.md"


@pytest.mark.parametrize("name", list(source_types()))
def test_every_source_type_has_docs_and_an_example(name: str) -> None:
    assert f"### `type: {name}`" in README
    options = source_types()[name].options
    for key in set(options.model_fields) - set(SourceConfig.model_fields):
        assert f"`{key}`" in README, f"{name}.{key} is missing from README.md"
    examples = [
        p
        for p in (REPO / "examples").glob("*.yaml")
        if re.search(rf"^\s*type:\s*{name}\s*$", p.read_text("utf-8"), re.M)
    ]
    assert examples, f"no example in examples/ uses type {name}"
    for path in examples:
        load_config(path)


def test_shipped_sources_yaml_is_valid() -> None:
    config = load_config(REPO / "sources.yaml")
    assert config.sources


def test_readme_starts_with_the_two_commands() -> None:
    head = README.split("\n## ", 1)[0]
    assert "make demo" in head and "make test" in head
