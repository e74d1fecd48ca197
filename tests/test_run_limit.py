"""`run_limit` in `glas run`: a Scrapy source that takes too long is stopped and reported."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss

Glas = Callable[..., subprocess.CompletedProcess[str]]


def test_a_slow_source_is_stopped_at_its_run_limit_and_the_others_finish(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas, tmp_path: Path
) -> None:
    replay.route("/slow/1.xml", make_rss("slow", 2, next_href=f"{replay.url}/slow/2.xml"))
    replay.route("/slow/2.xml", make_rss("slow", 2, first=3))
    replay.fault("/slow/2.xml", delay=30)
    replay.route("/quick.xml", make_rss("quick", 3))
    write_sources(f"""
        defaults:
          request_delay: 0s
          timeout: 60
        sources:
          - id: slow
            type: rss
            url: {replay.url}/slow/1.xml
            max_pages: 2
            run_limit: 2s
          - id: quick
            type: rss
            url: {replay.url}/quick.xml
    """)
    began = time.monotonic()
    result = glas("run")
    assert time.monotonic() - began < 20, "the limit, not the 30 s delay, ended the run"
    assert result.returncode == 1
    assert "glas: slow: failed: stopped after 2s: run_limit exceeded (kept what came)" in (
        result.stderr
    )
    with sqlite3.connect(tmp_path / "inbox.db") as db:
        per_source = dict(db.execute("SELECT source_id, count(*) FROM posts GROUP BY 1"))
        status = dict(db.execute("SELECT source_id, status FROM runs"))
    assert per_source == {"slow": 2, "quick": 3}, "the first page of the slow feed is kept"
    assert status == {"slow": "failed", "quick": "ok"}
