"""`glas export --follow`: a real `glas` process tails the inbox by seq and stops cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.model import Post
from storage.inbox import Inbox
from tests.conftest import REPO, glas_env

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 11, 4, 7, 0, tzinfo=UTC)


def post(number: int, text: str | None = None, **extra: Any) -> Post:
    return Post(
        platform="vk",
        native_id=f"-7001_{number}",
        text=text or f"На улице Строителей, {number} третью неделю не горят фонари во дворе",
        author_id=str(400000 + number),
        published_at=T0 + timedelta(minutes=number),
        topics=["landscaping"],
        **extra,
    )


class Follower:
    """`glas export --follow …` in the background; its stdout lines gathered as they come."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bin" / "glas"), *args],
            cwd=cwd,
            env=glas_env(cwd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        """The first ``count`` rows, once written (fails if the command ends first)."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"only {len(self.lines)} of {count} rows came"
            time.sleep(0.05)
        return [json.loads(line) for line in self.lines[:count]]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def follow(tmp_path: Path) -> Iterator[Callable[..., Follower]]:
    started: list[Follower] = []

    def start(*args: str) -> Follower:
        started.append(Follower(tmp_path, *args))
        return started[-1]

    yield start
    for follower in started:
        follower.kill()


def test_follow_streams_rows_committed_after_it_started(
    inbox: Inbox, db_url: str, follow: Callable[..., Follower]
) -> None:
    inbox.store("vk-wall", [post(1), post(2)])
    tail = follow("--db", db_url, "export", "--follow", "--interval", "0.1")
    first = tail.wait_for(2)
    assert [r["native_id"] for r in first] == ["-7001_1", "-7001_2"]

    inbox.store("vk-wall", [post(3)])  # committed while it runs
    assert tail.wait_for(3)[2]["native_id"] == "-7001_3"
    inbox.store("vk-wall", [post(1, "На улице Строителей, 1 фонари так и не горят, прошла неделя")])
    inbox.store(
        "vk-wall", [post(4), post(1, "На улице Строителей, 1 фонари так и не горят, прошла неделя")]
    )
    tail.wait_for(5)
    time.sleep(0.5)  # a few more polls: nothing is written twice
    code, err = tail.stop()
    assert (code, err) == (0, "")
    rows = [json.loads(line) for line in tail.lines]
    assert [r["native_id"] for r in rows] == ["-7001_1", "-7001_2", "-7001_3", "-7001_1", "-7001_4"]
    assert rows[3]["text"].endswith("прошла неделя")  # the change, once
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] == max(r["seq"] for r in inbox.export())


def test_follow_from_a_seq_as_open311_lines_stops_on_sigint(
    inbox: Inbox, db_url: str, follow: Callable[..., Follower]
) -> None:
    inbox.store("vk-wall", [post(1), post(2)])
    mark = inbox.last_seq()
    tail = follow(
        "--db",
        db_url,
        "export",
        "--format",
        "open311",
        "--since-seq",
        str(mark),
        "--follow",
        "--interval",
        "0.1",
    )
    time.sleep(0.3)
    assert tail.lines == []  # nothing after the mark yet
    inbox.store("vk-wall", [post(3)])
    request = tail.wait_for(1)[0]  # one request a line while following
    assert request["status"] == "open" and request["service_code"] == "landscaping"
    assert request["description"].startswith("На улице Строителей, 3")
    code, err = tail.stop(signal.SIGINT)
    assert (code, err) == (0, "")


def test_follow_into_a_file_writes_each_batch_as_it_comes(
    inbox: Inbox, db_url: str, follow: Callable[..., Follower], tmp_path: Path
) -> None:
    inbox.store("vk-wall", [post(1)])
    tail = follow(
        "--db",
        db_url,
        "export",
        "--follow",
        "--interval",
        "0.1",
        "--format",
        "csv",
        "-o",
        "changes.csv",
    )
    out = tmp_path / "changes.csv"
    deadline = time.monotonic() + 30
    while not (out.exists() and "-7001_1" in out.read_text("utf-8")):
        assert time.monotonic() < deadline and tail.process.poll() is None
        time.sleep(0.05)
    inbox.store("vk-wall", [post(2)])
    while "-7001_2" not in out.read_text("utf-8"):
        assert time.monotonic() < deadline and tail.process.poll() is None
        time.sleep(0.05)
    code, err = tail.stop()
    assert code == 0 and err == "changes.csv: 2 rows\n"
    lines = out.read_text("utf-8").splitlines()
    assert lines[0].startswith("id,platform,native_id") and len(lines) == 3  # one header


def test_follow_with_limit_ends_by_itself(
    inbox: Inbox, db_url: str, glas: Callable[..., Any]
) -> None:
    inbox.store("vk-wall", [post(1), post(2), post(3)])
    result = glas("--db", db_url, "export", "--follow", "--interval", "0.1", "--limit", "2")
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 2


def test_follow_of_a_missing_inbox_is_one_line(glas: Callable[..., Any]) -> None:
    result = glas("--db", "nowhere.db", "export", "--follow")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "glas: inbox: nowhere.db: no inbox here (run `glas run` or `glas db upgrade`)\n"
    )


def test_bad_interval_is_refused(glas: Callable[..., Any]) -> None:
    result = glas("export", "--follow", "--interval", "0")
    assert result.returncode == 2 and "--interval: must be more than 0, found 0" in result.stderr
