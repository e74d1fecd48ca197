"""Shared fixtures: the real shared data, a replay server, the `glas` command, inboxes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crawler.compiled import stale
from storage.sql import SqlInbox
from storage.sqlite import SqliteInbox
from tests.pg_server import PgServer
from tests.replay import ReplayServer

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared(relative: str) -> Path:
    """A file of ../shared/data, read in place. Without it (a user's clone has no ../shared;
    CI has) the test is skipped with one line saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(
            f"../shared/data/{relative} missing: tests on the real shared data need ../shared "
            "beside the clone"
        )
    return path


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


BACKENDS = ("sqlite", "postgresql")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test compiled modules older than their sources (they would run instead)."""
    edited = stale()
    if edited:
        pytest.exit(f"{', '.join(edited)} changed since compiled: run make setup", returncode=2)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``both_backends`` run once per inbox backend (``backend`` fixture)."""
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_backends"
    ):
        metafunc.parametrize("backend", BACKENDS)


@pytest.fixture
def backend() -> str:
    """The inbox backend of a test: SQLite unless the test is marked ``both_backends``."""
    return "sqlite"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the whole test session (initdb + pg_ctl, loopback)."""
    with PgServer() as server:
        yield server


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A new, empty PostgreSQL database for one test; its URL."""
    import psycopg

    name = f"t{next(_databases)}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_server.url_for(name)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """The ``--db`` of a test's inbox: a file in its directory, or a fresh PostgreSQL database."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "inbox.db")


@pytest.fixture
def inbox(db_url: str) -> Iterator[SqlInbox]:
    """The test's inbox, opened (and created) at ``db_url``."""
    from storage import open_inbox

    box = open_inbox(db_url)
    assert isinstance(box, SqlInbox)
    yield box
    box.close()


@pytest.fixture
def sqlite_inbox(tmp_path: Path) -> Iterator[SqliteInbox]:
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


class Background:
    """A `glas` command running in the background; always reaped when the test ends."""

    def __init__(self, args: tuple[str, ...], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bin" / "glas"), *args],
            cwd=cwd,
            env=env or glas_env(cwd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 30) -> None:
        """Poll ``ready`` while the command keeps running; fail with ``what`` on timeout."""
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, (
                f"glas ended early (exit {self.process.returncode}): {self.process.communicate()}"
            )
            assert time.monotonic() < deadline, f"timed out waiting: {what}"
            time.sleep(0.05)

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err

    def reap(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture
def start_glas(tmp_path: Path) -> Iterator[Callable[..., Background]]:
    """Start `glas ARGS…` in the background in the test's directory."""
    started: list[Background] = []

    def start(*args: str) -> Background:
        started.append(Background(args, tmp_path))
        return started[-1]

    yield start
    for run in started:
        run.reap()
