"""`glas daemon` end to end: the real command, sources on second-long schedules against the
replay server, collected by long-lived worker processes; stopped with SIGTERM like systemd
does (or SIGINT, like Ctrl-C)."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, REPO, glas_env
from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss
from tests.vk_server import VkServer, load_wall

pytestmark = pytest.mark.slow


class Daemon:
    """`glas daemon` in the background; its stderr read line by line as it comes."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bin" / "glas"), "daemon", *args],
            cwd=cwd,
            env=env or glas_env(cwd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines so far (with --log-json)."""
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"the daemon ended early: {self.stop()}"
            assert time.monotonic() < deadline, f"timed out waiting: {what}"
            time.sleep(0.1)

    def stop(self, timeout: float = 40, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        """SIGTERM, as systemd stops it; return exit status, stdout and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        return self.process.returncode, out, "\n".join(self.lines) + "\n"


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Daemon:
        started.append(Daemon(tmp_path, *args, env=env))
        return started[-1]

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
        daemon.process.communicate()


def runs(db: Path, source_id: str) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [
            dict(r)
            for r in conn.execute(
                "SELECT * FROM runs WHERE source_id = ? ORDER BY run_id", (source_id,)
            )
        ]
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        conn.close()


def ok_runs(db: Path, source_id: str) -> int:
    return sum(r["status"] == "ok" for r in runs(db, source_id))


def stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").timestamp()


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def test_sources_run_on_their_schedules_a_hanging_one_is_cut_and_sigterm_stops_cleanly(
    replay: ReplayServer, tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    db = tmp_path / "inbox.db"
    replay.route("/fast.xml", make_rss("fast", 3))
    replay.route("/slow.xml", make_rss("slow", 2))
    replay.route("/hang.xml", make_rss("hang", 2))
    replay.fault("/hang.xml", hang=True)  # answers never: only run_limit ends it
    vk = VkServer().start()
    vk.add_wall(load_wall(FIXTURES / "vk" / "zarechny_wall.json", newest=time.time() - 3600))
    write(
        tmp_path / "sources.yaml",
        f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          parallel: 4
          vk_api_url: {vk.url}
        sources:
          - id: fast
            type: rss
            url: {replay.url}/fast.xml
            schedule: {{every: 1s}}
          - id: slow
            type: rss
            url: {replay.url}/slow.xml
            schedule: {{every: 4s}}
          - id: hang
            type: rss
            url: {replay.url}/hang.xml
            timeout: 120
            run_limit: 4s
          - id: wall
            type: vk_wall
            owner: zarechny_news
            schedule: {{every: 2s}}
        """,
    )
    secret = f"vk1.a.{uuid.uuid4().hex}"
    daemon = daemons("--log-json", env=glas_env(tmp_path, VK_TOKEN=secret))
    began = time.monotonic()
    try:
        daemon.wait_until(
            lambda: (
                ok_runs(db, "fast") >= 3
                and ok_runs(db, "slow") >= 2
                and ok_runs(db, "wall") >= 1
                and any(r["status"] == "failed" for r in runs(db, "hang"))
            ),
            "fast run 3 times, slow twice, the wall once, the hanging source cut",
        )
        elapsed = time.monotonic() - began
        code, out, err = daemon.stop()
    finally:
        vk.stop()
    assert code == 0, err
    assert out == ""
    assert secret not in err

    records = [json.loads(line) for line in err.splitlines()]  # every line one JSON object
    assert {"time", "level", "source", "event", "message"} <= set(records[0])
    events = [(r["source"], r["event"]) for r in records]
    assert events[0] == (None, "daemon started") and events[-1] == (None, "daemon stopped")
    assert ("fast", "collected") in events and ("slow", "collected") in events
    assert (None, "worker ready") in events
    cut = [r for r in records if r["event"] == "failed" and r["source"] == "hang"]
    assert cut and cut[0]["error"] == "stopped after 4s: run_limit exceeded (kept what came)"
    assert 3.5 <= cut[0]["duration"] < 6, "cut at its limit, while the others went on"
    collected = next(r for r in records if r["event"] == "collected" and r["source"] == "slow")
    assert (collected["new"], collected["status"]) == (2, "ok")
    assert isinstance(collected["duration"], float)

    # No two runs of a source at once, and the slow one not more often than its interval.
    for source_id in ("fast", "slow"):
        spans = [(stamp(r["started_at"]), stamp(r["finished_at"])) for r in runs(db, source_id)]
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"{source_id}: a run started before the last one ended"
    for source_id, every in (("fast", 1), ("slow", 4)):
        launches = [
            datetime.fromisoformat(r["launched"]).timestamp()
            for r in records
            if r["source"] == source_id and "launched" in r
        ]
        assert len(launches) >= 2
        assert all(b - a >= every - 0.1 for a, b in itertools.pairwise(launches)), launches
    assert len(runs(db, "slow")) <= elapsed / 4 + 2
    hang = runs(db, "hang")[0]
    assert (hang["status"], hang["error"]) == (
        "failed",
        "stopped after 4s: run_limit exceeded (kept what came)",
    )
    assert len({r["pid"] for source in ("fast", "slow", "wall") for r in runs(db, source)}) == 1, (
        "one warm worker collected them all"
    )
    conn = sqlite3.connect(db)
    try:
        state = conn.execute(
            "SELECT consecutive_failures, last_error FROM source_state WHERE source_id = 'hang'"
        ).fetchone()
        running = conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()
    finally:
        conn.close()
    assert state == (1, "stopped after 4s: run_limit exceeded (kept what came)")
    assert running == (0,), "a run was left 'running' after the daemon stopped"


def test_hot_reload_adds_and_removes_sources_and_keeps_running_on_a_broken_file(
    replay: ReplayServer, tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    db = tmp_path / "inbox.db"
    sources = tmp_path / "sources.yaml"
    replay.route("/first.xml", make_rss("first", 2))
    replay.route("/second.xml", make_rss("second", 2))
    head = (
        "defaults:\n  request_delay: 0s\n  retry_backoff: 0s\n  schedule: {every: 1s}\nsources:\n"
    )
    sources.write_text(f"{head}  - {{id: first, type: rss, url: '{replay.url}/first.xml'}}\n")
    daemon = daemons()
    daemon.wait_until(lambda: ok_runs(db, "first") >= 1, "the first source collected")

    rival = subprocess.run(
        [sys.executable, str(REPO / "bin" / "glas"), "daemon"],
        cwd=tmp_path,
        env=glas_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rival.returncode == 1
    assert f"another glas daemon (pid {daemon.process.pid}) is running on this inbox" in (
        rival.stderr
    )

    sources.write_text(f"{head}  - {{id: second, type: rss, url: '{replay.url}/second.xml'}}\n")
    daemon.process.send_signal(signal.SIGHUP)
    reloaded = time.time()
    daemon.wait_until(lambda: ok_runs(db, "second") >= 1, "the added source collected")
    added_after = stamp(runs(db, "second")[0]["started_at"]) - reloaded
    assert added_after <= 1 + 1, "an added source runs within its interval (1s, and a second)"
    time.sleep(0.5)  # a run of the removed source begun before the reload may still end
    first_runs = len(runs(db, "first"))

    sources.write_text(sources.read_text() + "  - id: broken\n    type: rss\n    urll: x\n")
    daemon.process.send_signal(signal.SIGHUP)
    broke = time.time()
    daemon.wait_until(
        lambda: any(
            r["status"] == "ok" and stamp(r["started_at"]) > broke + 1 for r in runs(db, "second")
        ),
        "the old config collecting on after the break",
    )
    assert len(runs(db, "first")) == first_runs, "a removed source was still collected"
    code, _out, err = daemon.stop()
    assert code == 0, err
    assert "reloaded: added second; removed first" in err
    assert re.search(r"sources\.yaml:\d+: broken: unknown key 'urll'", err), err
    assert "invalid (1 problem); keeping the sources already scheduled" in err
    assert "Traceback" not in err


def test_a_failing_source_backs_off_exponentially_and_recovers_by_itself(
    replay: ReplayServer, tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    db = tmp_path / "inbox.db"
    replay.route("/flaky.xml", make_rss("flaky", 2))
    replay.fault("/flaky.xml", status=503)
    write(
        tmp_path / "sources.yaml",
        f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          retries: 0
          backoff_max: 4s
        sources:
          - id: flaky
            type: rss
            url: {replay.url}/flaky.xml
            schedule: {{every: 1s}}
        """,
    )
    daemon = daemons("--log-json")
    daemon.wait_until(
        lambda: sum(r["status"] == "failed" for r in runs(db, "flaky")) >= 4, "4 failures"
    )
    replay.clear_faults()  # flaky recovers by itself at its next try
    daemon.wait_until(lambda: ok_runs(db, "flaky") >= 1, "flaky collected again")
    code, _out, err = daemon.stop()
    assert code == 0, err
    records = [json.loads(line) for line in err.splitlines()]
    # It backs off: after n failures its next launch waits 1s × 2^(n-1), at most 4s (the
    # daemon takes a fire half an interval early at most).
    flaky = [
        (datetime.fromisoformat(r["launched"]).timestamp(), r["status"])
        for r in records
        if r["source"] == "flaky" and "launched" in r
    ]
    assert [s for _, s in flaky[:4]] == ["failed"] * 4
    assert "ok" in [s for _, s in flaky[4:]]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(flaky[:5])]
    for n, gap in enumerate(gaps, start=1):
        assert gap >= min(2 ** (n - 1), 4) - 0.5, (n, gaps)


def running_pid(db: Path, source_id: str) -> int | None:
    found = [r["pid"] for r in runs(db, source_id) if r["status"] == "running"]
    return found[-1] if found else None


def test_a_killed_worker_is_restarted_and_its_runs_closed(
    replay: ReplayServer, tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    db = tmp_path / "inbox.db"
    replay.route("/fast.xml", make_rss("fast", 2))
    replay.route("/hang.xml", make_rss("hang", 2))
    replay.fault("/hang.xml", hang=True)
    write(
        tmp_path / "sources.yaml",
        f"""
        defaults: {{request_delay: 0s, timeout: 600}}
        sources:
          - {{id: fast, type: rss, url: "{replay.url}/fast.xml", schedule: {{every: 1s}}}}
          - {{id: hang, type: rss, url: "{replay.url}/hang.xml", schedule: {{every: 1s}}}}
        """,
    )
    daemon = daemons("--log-json")
    daemon.wait_until(lambda: running_pid(db, "hang") is not None, "the hanging run going on")
    victim = running_pid(db, "hang")
    assert victim is not None and victim != daemon.process.pid, "collections run in a worker"
    os.kill(victim, signal.SIGKILL)
    daemon.wait_until(
        lambda: any(r["status"] == "ok" and r["pid"] != victim for r in runs(db, "fast")),
        "a new worker collecting",
    )
    code, _out, err = daemon.stop()
    assert code == 0, err
    died = [e for e in daemon.events() if e["event"] == "worker died"]
    assert died and died[0]["pid"] == victim and "hang" in died[0]["interrupted"]
    assert died[0]["message"].startswith(f"worker 1 (pid {victim}) died (killed by SIGKILL)")
    killed = [r for r in runs(db, "hang") if r["pid"] == victim]
    assert [(r["status"], r["error"]) for r in killed] == [
        ("interrupted", "the run was stopped before it finished")
    ]
    assert all(r["status"] != "running" for s in ("fast", "hang") for r in runs(db, s))
    assert "Traceback" not in err


def test_sigint_during_a_hang_stops_within_two_seconds(
    replay: ReplayServer, tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    db = tmp_path / "inbox.db"
    replay.route("/hang.xml", make_rss("hang", 2))
    replay.fault("/hang.xml", hang=True)
    write(
        tmp_path / "sources.yaml",
        f"""
        defaults: {{request_delay: 0s, timeout: 600}}
        sources:
          - {{id: hang, type: rss, url: "{replay.url}/hang.xml"}}
        """,
    )
    daemon = daemons()
    daemon.wait_until(lambda: running_pid(db, "hang") is not None, "the hanging run going on")
    began = time.monotonic()
    code, _out, err = daemon.stop(signum=signal.SIGINT)
    took = time.monotonic() - began
    assert code == 0, err
    assert took < 2, f"the daemon took {took:.1f}s to stop"
    assert [r["status"] for r in runs(db, "hang")] == ["interrupted"]
    assert "SIGINT: stopping (1 collections running)" in err


def test_a_worker_above_its_memory_ceiling_is_replaced_between_collections(
    replay: ReplayServer, tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    db = tmp_path / "inbox.db"
    for name in ("one", "two"):
        replay.route(f"/{name}.xml", make_rss(name, 2))
    write(
        tmp_path / "sources.yaml",
        f"""
        defaults: {{request_delay: 0s, worker_memory: 50MB, schedule: {{every: 1s}}}}
        sources:
          - {{id: one, type: rss, url: "{replay.url}/one.xml"}}
          - {{id: two, type: rss, url: "{replay.url}/two.xml"}}
        """,
    )
    daemon = daemons("--log-json")

    def workers_used() -> set[int]:
        return {r["pid"] for s in ("one", "two") for r in runs(db, s) if r["status"] == "ok"}

    daemon.wait_until(lambda: len(workers_used()) >= 3, "three workers in turn", timeout=90)
    code, _out, err = daemon.stop()
    assert code == 0, err
    recycled = [e for e in daemon.events() if e["event"] == "worker recycled"]
    assert len(recycled) >= 2
    assert "above worker_memory (50 MB)" in recycled[0]["message"]
    assert not [e for e in daemon.events() if e["event"] == "worker died"]
    statuses = [r["status"] for s in ("one", "two") for r in runs(db, s)]
    assert set(statuses) <= {"ok", "interrupted"} and "running" not in statuses


def test_a_backlog_is_reported_when_the_workers_cannot_keep_up(
    replay: ReplayServer, tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    names = [f"slow-{n}" for n in range(6)]
    for name in names:
        replay.route(f"/{name}.xml", make_rss(name, 1))
        replay.fault(f"/{name}.xml", delay=3)
    entries = "\n".join(f"  - {{id: {n}, type: rss, url: '{replay.url}/{n}.xml'}}" for n in names)
    (tmp_path / "sources.yaml").write_text(
        "defaults: {request_delay: 0s, parallel: 1, schedule: {every: 2s}}\n"
        f"sources:\n{entries}\n"
    )
    daemon = daemons("--log-json")
    daemon.wait_until(
        lambda: any(e["event"] == "backlog" for e in daemon.events()), "a backlog line", timeout=60
    )
    code, _out, err = daemon.stop()
    assert code == 0, err
    line = next(e for e in daemon.events() if e["event"] == "backlog")
    assert re.fullmatch(r"\d+ collections? late, oldest \d+[smh]", line["message"]), line
    assert line["late"] >= 1 and line["level"] == "warning"


def test_sources_of_one_site_share_its_politeness_in_the_daemon(
    replay: ReplayServer, tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    db = tmp_path / "inbox.db"
    names = [f"town-{n}" for n in range(10)]
    for name in names:
        replay.route(f"/{name}.xml", make_rss(name, 1))
        replay.fault(f"/{name}.xml", delay=0.3)
    entries = "\n".join(f"  - {{id: {n}, type: rss, url: '{replay.url}/{n}.xml'}}" for n in names)
    (tmp_path / "sources.yaml").write_text(
        "defaults: {request_delay: 0s, per_site: 10, schedule: {every: 1s}}\n"
        "sites:\n  127.0.0.1: {concurrency: 3}\n"
        f"sources:\n{entries}\n"
    )
    daemon = daemons()
    daemon.wait_until(lambda: all(ok_runs(db, n) >= 2 for n in names), "every source twice")
    code, _out, err = daemon.stop()
    assert code == 0, err
    assert replay.peak_in_flight == 3, "ten sources of one site: three requests at a time"
    assert replay.hits("/robots.txt") == 1, "robots.txt once for the site, kept"


def test_workers_never_import_from_the_working_directory(
    replay: ReplayServer, tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    db = tmp_path / "inbox.db"
    replay.route("/feed.xml", make_rss("feed", 2))
    for name in ("scrapy.py", "feedparser.py", "json.py"):  # would break any process importing it
        (tmp_path / name).write_text("raise SystemExit('imported from the working directory')\n")
    (tmp_path / "crawler").mkdir()
    (tmp_path / "crawler" / "__init__.py").write_text("raise SystemExit('a stranger crawler')\n")
    write(
        tmp_path / "sources.yaml",
        f"""
        defaults: {{request_delay: 0s}}
        sources:
          - {{id: feed, type: rss, url: "{replay.url}/feed.xml", schedule: {{every: 1s}}}}
        """,
    )
    daemon = daemons()  # cwd is tmp_path: `python -c` without -I would import json.py there
    daemon.wait_until(lambda: ok_runs(db, "feed") >= 2, "the feed collected twice")
    code, _out, err = daemon.stop()
    assert code == 0, err
    assert "working directory" not in err and "stranger" not in err


def test_two_workers_share_the_sites_and_each_site_stays_polite(
    tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    db = tmp_path / "inbox.db"
    with ReplayServer(host="127.0.0.2") as other, ReplayServer() as first:
        lines = []
        for server, prefix in ((first, "a"), (other, "b")):
            for n in range(6):
                server.route(f"/{prefix}{n}.xml", make_rss(f"{prefix}{n}", 1))
                server.fault(f"/{prefix}{n}.xml", delay=0.3)
                lines.append(
                    f"  - {{id: {prefix}{n}, type: rss, url: '{server.url}/{prefix}{n}.xml'}}"
                )
        (tmp_path / "sources.yaml").write_text(
            "defaults: {request_delay: 0s, per_site: 6, workers: 2, schedule: {every: 1s}}\n"
            "sites:\n  127.0.0.1: {concurrency: 2}\n  127.0.0.2: {concurrency: 2}\n"
            "sources:\n" + "\n".join(lines) + "\n"
        )
        daemon = daemons("--log-json")
        ids = [f"{p}{n}" for p in "ab" for n in range(6)]
        daemon.wait_until(lambda: all(ok_runs(db, i) >= 3 for i in ids), "every source 3 times")
        code, _out, err = daemon.stop()
        assert code == 0, err
        assert first.peak_in_flight == other.peak_in_flight == 2, "politeness per site"
    pids = {r["pid"] for i in ids for r in runs(db, i)}
    assert len(pids) == 2, "two warm workers did the work"
    ready = [e for e in daemon.events() if e["event"] == "worker ready"]
    assert len(ready) == 2
