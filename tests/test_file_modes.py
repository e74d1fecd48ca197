"""The inbox, its WAL files, lock files and exports are created owner-only (0600, directories
0700) whatever the umask, or with GLAS_FILE_MODE; files that already exist keep their mode."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storage.sqlite import SqliteInbox
from tests.conftest import glas_env
from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss

Glas = Callable[..., subprocess.CompletedProcess[str]]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 000 in this process (and the commands it starts): nothing is masked for us."""
    saved = os.umask(0)
    yield
    os.umask(saved)


@pytest.fixture
def feed(replay: ReplayServer, write_sources: Callable[[str], Path]) -> Path:
    replay.route("/feed.xml", make_rss("modes", 3))
    return write_sources(f"""
        defaults:
          request_delay: 0s
        sources:
          - id: feed
            type: rss
            url: {replay.url}/feed.xml
        """)


@pytest.mark.usefixtures("open_umask", "feed")
def test_everything_glas_creates_is_owner_only(glas: Glas, tmp_path: Path) -> None:
    assert glas("run", "--all").returncode == 0
    assert mode(tmp_path / "inbox.db") == 0o600
    assert mode(tmp_path / "inbox.db.locks") == 0o700
    assert mode(tmp_path / "inbox.db.locks" / "feed.lock") == 0o600
    assert glas("export", "--format", "csv", "-o", "posts.csv").returncode == 0
    assert mode(tmp_path / "posts.csv") == 0o600
    assert not list(tmp_path.glob("*.part"))
    with SqliteInbox(tmp_path / "inbox.db") as inbox:  # an open inbox has its WAL files
        inbox.sync_sources([])
        assert mode(tmp_path / "inbox.db-wal") == 0o600
        assert mode(tmp_path / "inbox.db-shm") == 0o600


@pytest.mark.usefixtures("open_umask", "feed")
def test_the_operator_chooses_another_mode(glas: Glas, tmp_path: Path) -> None:
    env = glas_env(tmp_path, GLAS_FILE_MODE="0640")
    assert glas("run", "--all", env=env).returncode == 0
    assert mode(tmp_path / "inbox.db") == 0o640
    assert mode(tmp_path / "inbox.db.locks") == 0o750
    assert mode(tmp_path / "inbox.db.locks" / "feed.lock") == 0o640
    assert glas("export", "-o", "posts.jsonl", env=env).returncode == 0
    assert mode(tmp_path / "posts.jsonl") == 0o640


@pytest.mark.usefixtures("feed")
def test_existing_files_keep_their_mode(glas: Glas, tmp_path: Path) -> None:
    assert glas("db", "upgrade").returncode == 0
    os.chmod(tmp_path / "inbox.db", 0o640)
    (tmp_path / "posts.jsonl").write_text("old\n", encoding="utf-8")
    os.chmod(tmp_path / "posts.jsonl", 0o644)
    assert glas("run", "--all").returncode == 0
    assert glas("export", "-o", "posts.jsonl").returncode == 0
    assert mode(tmp_path / "inbox.db") == 0o640
    assert mode(tmp_path / "posts.jsonl") == 0o644
    assert (tmp_path / "posts.jsonl").read_text(encoding="utf-8").count("\n") == 3


@pytest.mark.parametrize("value", ["0777", "0400", "640x", "rw-r-----"])
def test_a_bad_mode_is_one_line(glas: Glas, tmp_path: Path, value: str) -> None:
    result = glas("db", "upgrade", env=glas_env(tmp_path, GLAS_FILE_MODE=value))
    assert result.returncode == 2
    assert result.stderr.startswith(f"glas: GLAS_FILE_MODE={value}")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "inbox.db").exists()
