"""An inbox Glas cannot use, or an output place it cannot write, is one line and exit 1 or 2:
read-only inboxes, a schema newer than this Glas, directories that do not exist."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage.migrations import LATEST
from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss

Glas = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def feed(replay: ReplayServer, write_sources: Callable[[str], Path]) -> Path:
    replay.route("/feed.xml", make_rss("errors", 3))
    return write_sources(f"""
        defaults:
          request_delay: 0s
        sources:
          - id: feed
            type: rss
            url: {replay.url}/feed.xml
        """)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (a file or a directory) read-only for this user. Root ignores file modes, so
    as root the file is made immutable (``chattr +i``); the test is skipped where it cannot."""
    if os.geteuid() != 0:
        saved = stat.S_IMODE(path.stat().st_mode)
        os.chmod(path, 0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            os.chmod(path, saved)
        return
    try:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("running as root, which ignores file modes, and chattr is missing")
    if done.returncode != 0:
        pytest.skip(f"running as root, which ignores file modes, and {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return result.stderr.strip()


@pytest.mark.usefixtures("feed")
def test_a_read_only_inbox_file(glas: Glas, tmp_path: Path) -> None:
    assert glas("run", "--all").returncode == 0
    (tmp_path / "more.jsonl").write_text(
        '{"platform": "rss", "native_id": "x-1", "text": "Во дворе не убирают снег."}\n',
        encoding="utf-8",
    )
    with read_only(tmp_path / "inbox.db"):
        for command in (("run", "--all"), ("import", "more.jsonl")):
            result = glas(*command)
            assert result.returncode == 1
            assert one_line(result) == (
                "glas: inbox: inbox.db is read-only (attempt to write a readonly database)"
            )
        assert glas("stats").returncode == 0  # reading needs no write access
        assert glas("status").returncode == 0
        assert glas("export").stdout.count("\n") == 3
        upgrade = glas("db", "upgrade")
        assert (upgrade.returncode, upgrade.stdout) == (
            0,
            f"inbox.db: schema is up to date (version {LATEST})\n",
        )


@pytest.mark.usefixtures("feed")
def test_an_inbox_in_a_read_only_directory(glas: Glas, tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.mkdir()
    assert glas("run", "--all", "--db", "box/inbox.db").returncode == 0
    assert sorted(p.name for p in box.iterdir()) == ["inbox.db", "inbox.db.locks"]
    with read_only(box):
        result = glas("stats", "--db", "box/inbox.db")
    assert result.returncode == 1
    assert one_line(result).startswith(
        f"glas: inbox: box/inbox.db is read-only (its directory {box} is read-only, and SQLite "
        "needs to create inbox.db-wal and -shm there: "
    )


def test_export_into_a_missing_directory(glas: Glas, tmp_path: Path) -> None:
    assert glas("db", "upgrade").returncode == 0
    result = glas("export", "-o", "missing/posts.jsonl")
    assert result.returncode == 2
    assert one_line(result) == "glas: --output: directory missing does not exist"
    assert not (tmp_path / "missing").exists()
    result = glas("export", "-o", "inbox.db/posts.jsonl")
    assert result.returncode == 2
    assert one_line(result) == "glas: --output: directory inbox.db is not a directory"


@pytest.mark.usefixtures("feed")
def test_an_inbox_from_a_newer_glas_is_refused_by_every_command(glas: Glas, tmp_path: Path) -> None:
    assert glas("db", "upgrade").returncode == 0
    conn = sqlite3.connect(tmp_path / "inbox.db")
    with conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) "
            "VALUES (?, 'from the future', '2030-01-01T00:00:00Z')",
            (LATEST + 1,),
        )
    conn.close()
    (tmp_path / "posts.jsonl").write_text(
        '{"platform": "rss", "native_id": "x-1", "text": "Снег."}\n', encoding="utf-8"
    )
    expected = (
        f"glas: inbox: inbox.db: inbox schema is version {LATEST + 1}, newer than this Glas "
        f"knows ({LATEST}): upgrade Glas"
    )
    for command in (
        ("db", "upgrade"),
        ("run", "--all"),
        ("stats",),
        ("status",),
        ("export",),
        ("import", "posts.jsonl"),
    ):
        result = glas(*command)
        assert (result.returncode, one_line(result)) == (1, expected), command
        assert result.stdout == ""


@pytest.mark.usefixtures("feed")
def test_an_inbox_in_a_missing_directory_is_not_created(glas: Glas, tmp_path: Path) -> None:
    for command in (("run", "--all"), ("db", "upgrade")):
        result = glas(*command, "--db", "nowhere/sub/inbox.db")
        assert result.returncode == 1
        assert one_line(result) == (
            "glas: inbox: nowhere/sub/inbox.db: directory nowhere/sub does not exist"
        )
    assert not (tmp_path / "nowhere").exists()
    assert glas("run", "--all", "--db", "new.db").returncode == 0  # a new file is fine
    assert (tmp_path / "new.db").is_file()
