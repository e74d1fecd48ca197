"""The documentation keeps up with the code: every command, sources.yaml key and type is in
README.md or docs/; the README stays short, its links lead somewhere and its quick start
works as written."""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.cli import build_parser
from crawler.config import Defaults, OfficialAccounts, load_config
from crawler.model import SourceConfig
from spiders import source_types
from tests.conftest import REPO, glas_env
from tests.replay import ReplayServer

README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = REPO / "docs"
REFERENCE = README + "".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))
SOURCES_DOC = (DOCS / "sources.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = []
    for name, child in sub.choices.items():
        nested = [a for a in child._actions if isinstance(a, argparse._SubParsersAction)]
        names += [f"{name} {n}" for n in nested[0].choices] if nested else [name]
    return names


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_in_the_readme_table(command: str) -> None:
    assert f"| `glas {command}" in README


@pytest.mark.parametrize("model", [Defaults, OfficialAccounts, SourceConfig])
def test_every_common_key_is_documented(model: type) -> None:
    for key in model.model_fields:
        assert f"`{key}`" in SOURCES_DOC, f"{model.__name__}.{key} is missing from docs/sources.md"


@pytest.mark.parametrize("name", list(source_types()))
def test_every_source_type_has_docs_and_an_example(name: str) -> None:
    assert f"## `type: {name}`" in SOURCES_DOC
    options = source_types()[name].options
    for key in set(options.model_fields) - set(SourceConfig.model_fields):
        assert f"`{key}`" in SOURCES_DOC, f"{name}.{key} is missing from docs/sources.md"
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


def test_readme_is_short_and_its_links_lead_somewhere() -> None:
    assert len(README.splitlines()) < 100, "the reference belongs in docs/"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", REFERENCE):
        if "://" not in target:
            assert (REPO / target).exists() or (DOCS / target).exists(), target
    outside = re.findall(r"\.\./shared/\w+\.md", REFERENCE)
    assert not outside, f"documents a user's clone does not have: {outside}"


def test_every_section_of_sources_yaml_is_documented() -> None:
    from crawler.config import TOP_LEVEL_KEYS, SiteSettings

    for key in TOP_LEVEL_KEYS:
        assert f"`{key}" in SOURCES_DOC or f"{key}:" in SOURCES_DOC, key
    for key in SiteSettings.model_fields:
        assert f"`{key}`" in SOURCES_DOC, f"sites.{key} is missing from docs/sources.md"


def test_the_quick_start_works_as_written(tmp_path: Path) -> None:
    """The README's quick start, command by command, with the example feed served locally."""
    block = README.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    assert commands[0].startswith("make setup"), "the set-up is what `make test` did already"
    example = (REPO / "sources.yaml").read_text(encoding="utf-8")
    feed = re.search(r"url: (\S+)", example)
    assert feed is not None
    with ReplayServer(REPO / "examples" / "replay") as replay:
        (tmp_path / "sources.yaml").write_text(
            example.replace(feed.group(1), f"{replay.url}/mos/rss.xml"), encoding="utf-8"
        )
        outputs = []
        for command in commands[1:]:
            if command.startswith("cp "):
                _, src, dst = command.split()
                shutil.copy(tmp_path / src, tmp_path / dst)
                continue
            assert command.startswith("glas "), command
            result = subprocess.run(
                [sys.executable, str(REPO / "bin" / "glas"), *shlex.split(command)[1:]],
                cwd=tmp_path,
                env=glas_env(tmp_path),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, (command, result.stderr)
            assert result.stderr == "", (command, result.stderr)
            outputs.append(result.stdout)
    checked, ran, _status, stats, exported = outputs
    assert "ok, 1 sources (1 enabled)" in checked
    assert ran.startswith("glas run: 1 source, 1 ok")
    assert stats.split()[1] == "posts"
    assert len(exported.splitlines()) == 3
