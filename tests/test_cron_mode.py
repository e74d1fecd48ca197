"""`glas run` under cron: only due sources are collected; a failing one backs off and recovers.

Every run is the real command against feeds on the replay server; times are real (a source
`every: 10s` is due again 10 seconds after the `glas run` that collected it started, taken up
to a tenth of the interval early). The tests wait from the start times the runs stored.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler.lock import FileLock
from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss

pytestmark = pytest.mark.slow

Glas = Callable[..., subprocess.CompletedProcess[str]]


def runs(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute("SELECT source_id, status FROM runs ORDER BY run_id"))
    finally:
        conn.close()


def failures(db: Path, source_id: str) -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT consecutive_failures FROM source_state WHERE source_id = ?", (source_id,)
        ).fetchone()
        return row[0]
    finally:
        conn.close()


def sleep_until(db: Path, seconds: float) -> None:
    """Sleep until ``seconds`` after the start of the last `glas run` (as stored) and a bit."""
    conn = sqlite3.connect(db)
    try:
        (start,) = conn.execute(
            "SELECT min(started_at) FROM runs WHERE pid = "
            "(SELECT pid FROM runs ORDER BY run_id DESC LIMIT 1)"
        ).fetchone()
    finally:
        conn.close()
    began = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    time.sleep(max(0.0, began + seconds + 1.2 - time.time()))


def test_only_due_sources_are_collected(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, tmp_path: Path
) -> None:
    db = tmp_path / "inbox.db"
    for name in ("hourly", "fast", "yearly", "paused"):
        replay.route(f"/{name}.xml", make_rss(name, 2))
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          schedule: {{every: 1h}}
        sources:
          - id: hourly
            type: rss
            url: {replay.url}/hourly.xml
          - id: fast
            type: rss
            url: {replay.url}/fast.xml
            schedule: {{every: 10s}}
          - id: yearly
            type: rss
            url: {replay.url}/yearly.xml
            schedule: {{cron: "0 0 1 1 *"}}
          - id: paused
            type: rss
            url: {replay.url}/paused.xml
            enabled: false
    """)
    first = glas("run")  # nothing ran yet: every enabled source is due
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("glas run: 3 sources, 3 ok")
    assert sorted(runs(db)) == [("fast", "ok"), ("hourly", "ok"), ("yearly", "ok")]

    second = glas("run")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("glas run: nothing is due; next: fast at ")
    assert second.stderr == ""
    assert len(runs(db)) == 3
    assert replay.hits("/hourly.xml") == replay.hits("/fast.xml") == 1

    sleep_until(db, 10 - 1)  # due a tenth of the interval early
    third = glas("run")
    assert third.returncode == 0, third.stderr
    assert third.stdout.startswith("glas run: 1 source, 1 ok")
    assert runs(db)[3:] == [("fast", "ok")]
    assert (replay.hits("/hourly.xml"), replay.hits("/yearly.xml")) == (1, 1)

    forced = glas("run", "--source", "yearly")  # --source: collected now, due or not
    assert forced.returncode == 0, forced.stderr
    everything = glas("run", "--all")  # --all: every enabled source now
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.startswith("glas run: 3 sources, 3 ok")
    assert replay.hits("/yearly.xml") == 3
    assert replay.hits("/paused.xml") == 0


def test_failing_source_backs_off_then_recovers_by_itself(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, tmp_path: Path
) -> None:
    db = tmp_path / "inbox.db"
    replay.route("/flaky.xml", make_rss("flaky", 3, newest=datetime.now(UTC)))
    replay.fault("/flaky.xml", status=503)
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          retries: 0
          backoff_max: 1h
        sources:
          - id: flaky
            type: rss
            url: {replay.url}/flaky.xml
            schedule: {{every: 5s}}
    """)
    assert glas("run").returncode == 1  # due: it never ran
    assert failures(db, "flaky") == 1
    assert glas("run", "--source", "flaky").returncode == 1  # forced now; counts all the same
    assert failures(db, "flaky") == 2

    replay.clear_faults()
    waiting = glas("run")  # two failures: 2 × 5s after the last run, so not due yet
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.startswith("glas run: nothing is due; next: flaky at ")
    assert replay.hits("/flaky.xml") == 2

    sleep_until(db, 10 - 0.5)
    healed = glas("run")
    assert healed.returncode == 0, healed.stderr
    assert "3 new" in healed.stdout
    assert failures(db, "flaky") == 0
    assert [s for _, s in runs(db)] == ["failed", "failed", "ok"]
    status = glas("status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.splitlines()[2].split()[:2] == ["flaky", "ok"]


def test_a_source_locked_by_another_process_is_skipped_and_the_others_run(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, tmp_path: Path
) -> None:
    replay.route("/busy.xml", make_rss("busy", 2))
    replay.route("/free.xml", make_rss("free", 2))
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - {{id: busy, type: rss, url: "{replay.url}/busy.xml"}}
          - {{id: free, type: rss, url: "{replay.url}/free.xml"}}
    """)
    with FileLock(tmp_path / "inbox.db.locks" / "busy.lock"):  # this process collects it
        result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"glas: busy: skipped: being collected by pid {os.getpid()}\n"
    assert result.stdout.startswith("glas run: 1 source, 1 ok")
    assert runs(tmp_path / "inbox.db") == [("free", "ok")]
    assert replay.hits("/busy.xml") == 0
