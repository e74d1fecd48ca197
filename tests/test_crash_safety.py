"""A `glas run` killed with SIGKILL part-way loses nothing and duplicates nothing.

DESIGN.md invariant 2: the cursor is committed with the posts it covers, so the next run
starts from the last committed cursor and re-collecting the overlap is harmless.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from spiders.rss import id_scope
from storage import InboxError, open_inbox
from storage.sql import SqlInbox
from tests.conftest import Background
from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss

pytestmark = pytest.mark.slow

PAGE = 30


def count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


def rows(db_url: str, sql: str) -> list[tuple]:
    """Rows of a query on either backend; none while the inbox is not created yet."""
    try:
        with open_inbox(db_url, create=False) as box:
            assert isinstance(box, SqlInbox)
            return box.query(sql)
    except InboxError:
        return []


@pytest.mark.both_backends
def test_sigkill_after_some_batches_then_rerun_stores_every_post_once(
    replay: ReplayServer,
    write_sources: Callable[[str], Path],
    glas: Callable[..., subprocess.CompletedProcess[str]],
    start_glas: Callable[..., Background],
    db_url: str,
) -> None:
    def count(sql: str) -> int:
        found = rows(db_url, sql)
        return found[0][0] if found else 0

    replay.route("/feed/1.xml", make_rss("crash", PAGE, next_href="2.xml"))
    replay.route("/feed/2.xml", make_rss("crash", PAGE, first=PAGE + 1))
    replay.fault("/feed/2.xml", delay=20)  # page 2 keeps the run busy until it is killed
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          batch_size: 10
        sources:
          - id: crashy
            type: rss
            url: {replay.url}/feed/1.xml
            max_pages: 5
    """)
    victim = start_glas("--db", db_url, "run", "--all")
    victim.wait_until(lambda: count("SELECT count(*) FROM posts") >= PAGE, "page 1 committed")
    assert replay.hits("/feed/2.xml") <= 1
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=10)
    assert victim.process.returncode == -signal.SIGKILL
    assert count("SELECT count(*) FROM posts") == PAGE  # page 2 never arrived
    assert count("SELECT count(*) FROM runs WHERE status = 'running'") == 1

    replay.clear_faults()
    rerun = glas("--db", db_url, "run", "--all")
    assert rerun.returncode == 0, rerun.stderr
    assert "30 new" in rerun.stdout and "30 unchanged" in rerun.stdout
    assert count("SELECT count(*) FROM posts") == 2 * PAGE
    assert count("SELECT count(DISTINCT native_id) FROM posts") == 2 * PAGE
    assert count("SELECT count(DISTINCT seq) FROM posts") == 2 * PAGE
    scope = id_scope(f"{replay.url}/feed/1.xml")
    served = {f"{scope}#crash-{n}" for n in range(1, 2 * PAGE + 1)}
    stored = {row[0] for row in rows(db_url, "SELECT native_id FROM posts")}
    statuses = [row[0] for row in rows(db_url, "SELECT status FROM runs ORDER BY run_id")]
    [(killed_error,)] = rows(db_url, "SELECT error FROM runs ORDER BY run_id LIMIT 1")
    [(cursor,)] = rows(db_url, "SELECT cursor FROM source_state")
    assert stored == served
    assert statuses == ["interrupted", "ok"]
    assert killed_error == "the run was stopped before it finished"
    assert '"etag":"' in cursor.replace(" ", "")  # the feed's ETag saved once every page was in


def test_sigterm_marks_the_run_interrupted_without_hurting_source_health(
    replay: ReplayServer,
    write_sources: Callable[[str], Path],
    glas: Callable[..., subprocess.CompletedProcess[str]],
    start_glas: Callable[..., Background],
    tmp_path: Path,
) -> None:
    db = tmp_path / "inbox.db"
    replay.route("/quick.xml", make_rss("quick", 3))
    replay.route("/stuck.xml", make_rss("stuck", 4))
    replay.fault("/stuck.xml", delay=30)
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: quick
            type: rss
            url: {replay.url}/quick.xml
          - id: stuck
            type: rss
            url: {replay.url}/stuck.xml
    """)
    run = start_glas("run", "--all")
    run.wait_until(
        lambda: (
            count(db, "SELECT count(*) FROM runs WHERE status = 'ok'") >= 1
            and replay.hits("/stuck.xml") > 0
        ),
        "the quick source done and the stuck one fetching",
    )
    run.process.send_signal(signal.SIGTERM)  # one signal stops at once, the download dropped
    stopped = time.monotonic()
    code, out, err = run.finish(timeout=20)
    assert time.monotonic() - stopped < 2, "the stuck download must not hold the stop"
    assert code == 1
    assert "1 ok, 0 failed, 1 interrupted" in out and "(interrupted: stuck)" in out
    assert err.splitlines()[:2] == [
        "glas: stopping… (what was collected so far is kept)",
        "glas: stuck: interrupted before it finished (what was stored is kept; the next run "
        "starts from the last saved cursor)",
    ]
    assert "Traceback" not in out + err
    conn = sqlite3.connect(db)
    try:
        statuses = dict(conn.execute("SELECT source_id, status FROM runs"))
        health = dict(conn.execute("SELECT source_id, consecutive_failures FROM source_state"))
    finally:
        conn.close()
    assert statuses == {"quick": "ok", "stuck": "interrupted"}
    assert health.get("stuck", 0) == 0, "an operator's stop is not a failure of the source"

    replay.clear_faults()
    again = glas("run", "--all")
    assert again.returncode == 0, again.stderr
    assert count(db, "SELECT count(*) FROM posts WHERE source_id = 'stuck'") == 4
