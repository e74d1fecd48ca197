"""Shared fixtures: the real shared data, a replay server, the `glas` command, inboxes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storage.sqlite import SqliteInbox
from tests.replay import ReplayServer

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MOS_RSS = SHARED_DATA / "fixtures" / "rss_mos_ru_news_2022-07-27.xml"


def shared(relative: str) -> Path:
    """A file of ../shared/data, read in place; the test is skipped loudly if it is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.fail(f"shared data missing: {path} (CI provides ../shared/data beside the clone)")
    return path


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[SqliteInbox]:
    box = SqliteInbox(tmp_path / "inbox.db")
    yield box
    box.close()


@pytest.fixture
def write_sources(tmp_path: Path) -> Callable[[str], Path]:
    """Write a sources.yaml (dedented) into the test's directory and return its path."""

    def write(text: str, name: str = "sources.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def glas_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLAS_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


@pytest.fixture
def glas(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `glas` command in the test's directory (cwd = tmp_path)."""

    def run(
        *args: str, timeout: float = 120, env: dict[str, str] | None = None, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "bin" / "glas"), *args],
            cwd=tmp_path,
            env=env or glas_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )

    return run
