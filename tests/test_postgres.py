"""The PostgreSQL inbox end to end: `glas` commands on a real server, equal to SQLite's result.

The storage logic itself is tested on both backends by the modules marked ``both_backends``
(test_storage, test_answers_and_deletions, test_dedupe_cases, test_pipeline, the exports and
the concurrency tests); this module covers what only PostgreSQL has: its URL, its locks,
its column types and its error messages.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crawler.lock import AdvisoryLock, AdvisoryLocks
from crawler.model import Post
from storage import InboxError, open_inbox
from storage.migrations import LATEST
from storage.postgres import PostgresInbox
from tests.conftest import shared
from tests.replay import ReplayServer

Glas = Callable[..., subprocess.CompletedProcess[str]]
# Columns whose values depend on when or where a row was written, not on what was collected.
VOLATILE = {"id", "first_seen_at", "updated_at", "seq", "cluster_id"}


@pytest.fixture
def feed_sources(replay: ReplayServer, write_sources: Callable[[str], Path]) -> Path:
    replay.route("/mos/rss.xml", shared("fixtures/rss_mos_ru_news_2022-07-27.xml").read_bytes())
    return write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: mos-news
            type: rss
            url: {replay.url}/mos/rss.xml
            municipality: Москва
    """)


def exported(glas: Glas, db: str, table: str = "posts") -> list[dict[str, Any]]:
    result = glas("--db", db, "export", "--table", table)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_glas_run_status_and_export_on_postgresql(
    glas: Glas, feed_sources: Path, pg_url: str, tmp_path: Path
) -> None:
    first = glas("--db", pg_url, "run", "--all")
    assert first.returncode == 0, first.stderr
    assert "1 ok, 0 failed; 10 new" in first.stdout
    again = glas("--db", pg_url, "run", "--all")
    assert again.returncode == 0 and "0 new, 0 updated" in again.stdout, again.stdout

    stats = glas("--db", pg_url, "stats")
    assert stats.returncode == 0 and stats.stdout.startswith("10 posts in 10 cases"), stats

    # The same harvest into SQLite gives the same health and rows (but for when written).
    assert glas("--db", "inbox.db", "run", "--all").returncode == 0
    assert glas("--db", "inbox.db", "run", "--all").returncode == 0
    health = {}
    for db in (pg_url, "inbox.db"):
        status = glas("--db", db, "status", "--json")
        assert status.returncode == 0, status.stderr
        [row] = json.loads(status.stdout)
        health[db] = {
            k: v for k, v in row.items() if k not in ("last_run_at", "last_success_at", "next_due")
        }
    assert health[pg_url] == health["inbox.db"]
    stats = {}
    for db in (pg_url, "inbox.db"):
        stats[db] = json.loads(glas("--db", db, "stats", "--json").stdout)
        for run in stats[db].pop("last_runs"):
            assert run["status"] == "ok" and run["started_at"].endswith("Z")
        for row in stats[db]["by_source"]:
            assert row.pop("last_run_at").endswith("Z")
    assert stats[pg_url] == stats["inbox.db"]
    assert stats[pg_url]["by_day"] == [{"day": "2022-07-27", "posts": 10}]
    assert health[pg_url]["last_post_at"] == "2022-07-27T08:01:01Z"
    for table in ("posts", "clusters"):
        pg_rows = exported(glas, pg_url, table)
        sqlite_rows = exported(glas, str(tmp_path / "inbox.db"), table)
        assert len(pg_rows) == len(sqlite_rows) == 10
        strip = [{k: v for k, v in r.items() if k not in VOLATILE} for r in pg_rows]
        assert strip == [{k: v for k, v in r.items() if k not in VOLATILE} for r in sqlite_rows]
        assert [r["seq"] for r in pg_rows] == sorted(r["seq"] for r in pg_rows)


def test_columns_are_native_types_in_postgresql(inbox_pg: PostgresInbox) -> None:
    """Routing tools query times as timestamptz and JSON as jsonb; Glas reads both as text."""
    post = Post(
        platform="vk",
        native_id="-1_1",
        text="Яма\x00 на дороге у дома 5, когда починят?",
        metrics={"likes": 2},
        raw={"text": "Яма\x00"},
    )
    inbox_pg.store("src", [post])
    types = dict(
        inbox_pg.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'posts' AND column_name IN ('published_at', 'metrics', 'seq')"
        )
    )
    assert types == {
        "published_at": "timestamp with time zone",
        "metrics": "jsonb",
        "seq": "bigint",
    }
    [(likes, text, first_seen)] = inbox_pg.query(
        "SELECT (metrics->>'likes')::int, text, first_seen_at FROM posts"
    )
    assert (likes, text) == (2, "Яма на дороге у дома 5, когда починят?")  # NUL cannot be stored
    assert first_seen.endswith("Z") and "T" in first_seen


@pytest.fixture
def inbox_pg(pg_url: str) -> Any:
    box = open_inbox(pg_url)
    assert isinstance(box, PostgresInbox)
    yield box
    box.close()


def test_a_source_held_by_another_process_is_skipped(
    glas: Glas, feed_sources: Path, pg_url: str
) -> None:
    with AdvisoryLocks(pg_url) as locks:
        assert locks.take(["mos-news"]) == {}
        result = glas("--db", pg_url, "run", "--all")
        assert result.returncode == 1
        assert "mos-news: skipped: being collected by pid " in result.stdout + result.stderr
        # A lock is per database: the same source id elsewhere is free.
        assert AdvisoryLocks(pg_url).take(["other-source"]) == {}
    assert glas("--db", pg_url, "run", "--all").returncode == 0  # released with the session


def test_one_daemon_per_postgresql_inbox(glas: Glas, feed_sources: Path, pg_url: str) -> None:
    lock = AdvisoryLock(pg_url, "_daemon")
    lock.acquire()
    try:
        result = glas("--db", pg_url, "daemon", timeout=60)
    finally:
        lock.release()
    assert result.returncode != 0
    assert "another glas daemon (pid " in result.stderr
    assert "advisory lock glas:_daemon" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_is_one_line_without_the_password(glas: Glas, pg_server: Any) -> None:
    url = f"postgresql://glas:s3cret-pw@127.0.0.1:{pg_server.port}/no_such_database"
    result = glas("--db", url, "stats")
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "no_such_database" in line and "cannot connect to PostgreSQL" in line
    assert "s3cret-pw" not in result.stderr + result.stdout
    with pytest.raises(InboxError, match=r"glas:\*\*\*@"):
        open_inbox(url)


def test_schema_is_created_once_by_concurrent_openers(pg_url: str) -> None:
    """Two processes starting on an empty database at once: one creates, the other waits."""
    import threading

    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            open_inbox(pg_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [v for (v,) in versions] == list(range(1, LATEST + 1))


def test_daemon_on_postgresql_runs_cuts_and_stops_cleanly(
    replay: ReplayServer, write_sources: Callable[[str], Path], pg_url: str, tmp_path: Path
) -> None:
    """The daemon's workers write into PostgreSQL; a hung collection is cut and recorded there."""
    from tests.test_daemon import Daemon
    from tests.test_run_e2e import make_rss

    replay.route("/fast.xml", make_rss("fast", 3))
    replay.route("/hang.xml", make_rss("hang", 2))
    replay.fault("/hang.xml", hang=True)
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: fast
            type: rss
            url: {replay.url}/fast.xml
            schedule: {{every: 1s}}
          - id: hang
            type: rss
            url: {replay.url}/hang.xml
            timeout: 120
            run_limit: 3s
    """)
    daemon = Daemon(tmp_path, "--db", pg_url)
    with open_inbox(pg_url) as box:
        assert isinstance(box, PostgresInbox)

        def statuses(source_id: str) -> list[str]:
            rows = box.query(
                "SELECT status FROM runs WHERE source_id = ? ORDER BY run_id", [source_id]
            )
            return [status for (status,) in rows]

        try:
            daemon.wait_until(
                lambda: statuses("fast").count("ok") >= 2 and "failed" in statuses("hang"),
                "two runs of fast and the hanging source cut",
                timeout=60,
            )
        finally:
            code, _, err = daemon.stop()
        assert code == 0, err
        [(error, failures)] = box.query(
            "SELECT last_error, consecutive_failures FROM source_state WHERE source_id = 'hang'"
        )
        assert (error, failures) == ("stopped after 3s: run_limit exceeded (kept what came)", 1)
        assert box.query("SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]
        assert box.query("SELECT count(*) FROM posts WHERE source_id = 'fast'") == [(3,)]
