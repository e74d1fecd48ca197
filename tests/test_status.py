"""`glas status`: every health state a source can be in, as a table and as JSON."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss

pytestmark = pytest.mark.slow

Glas = Callable[..., subprocess.CompletedProcess[str]]


def sources_yaml(url: str, *, later: bool) -> str:
    """The config of the first runs, or the one after an operator's edit (``later``)."""
    retired = f"""
          - id: retired
            type: rss
            url: {url}/retired.xml"""
    newcomer = f"""
          - id: newcomer
            type: rss
            url: {url}/newcomer.xml"""
    return f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          retries: 0
          schedule: {{every: 1h}}
          backoff_max: 6h
        sources:
          - id: fresh
            type: rss
            url: {url}/fresh.xml
          - id: quiet
            type: rss
            url: {url}/quiet.xml
          - id: broken
            type: rss
            url: {url}/broken.xml
          - id: stubborn
            type: rss
            url: {url}/stubborn.xml
          - id: ghost
            type: telegram_web
            channel: ghost
            base_url: {url}
          - id: sleeping
            type: rss
            url: {url}/sleeping.xml
            enabled: false{newcomer if later else retired}
    """


def test_every_health_state(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas
) -> None:
    now = datetime.now(UTC)
    replay.route("/fresh.xml", make_rss("fresh", 3, newest=now))
    replay.route("/quiet.xml", make_rss("quiet", 5, newest=now - timedelta(days=3)))
    replay.route("/retired.xml", make_rss("retired", 2, newest=now))
    for name in ("broken", "stubborn"):
        replay.route(f"/{name}.xml", make_rss(name, 2))
        replay.fault(f"/{name}.xml", status=500)
    write_sources(sources_yaml(replay.url, later=False))
    assert glas("run", "--all").returncode == 1
    assert glas("run", "--source", "stubborn").returncode == 1  # a second failure in a row
    write_sources(sources_yaml(replay.url, later=True))

    status = glas("status")
    assert status.returncode == 1, "failing sources make the exit status 1"
    table = status.stdout.splitlines()
    assert table[0].split()[:2] == ["source", "state"]
    states = {
        line.split("  ")[0]: re.split(r"\s{2,}", line)[1] for line in table[2:] if "  " in line
    }
    assert states["fresh"] == "ok"
    assert states["quiet"] == "silent"
    assert states["broken"] == "failing"
    assert re.fullmatch(r"backing off until \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", states["stubborn"])
    assert states["ghost"] == "gone"
    assert states["sleeping"] == "disabled"
    assert states["newcomer"] == "never run"
    assert states["retired"] == "removed from config"
    assert f"broken: last error: HTTP 500 from {replay.url}/broken.xml" in status.stdout
    assert "ghost: last error: channel @ghost not found (HTTP 404" in status.stdout
    assert table[-1] == (
        "8 sources: 1 ok, 1 silent, 1 failing, 1 backing off, 1 gone, 1 disabled, "
        "1 never run, 1 removed"
    )

    as_json = glas("status", "--json")
    assert as_json.returncode == 1
    report = {h["source_id"]: h for h in json.loads(as_json.stdout)}
    assert report["fresh"]["posts_24h"] == 3 and report["quiet"]["posts_24h"] == 0
    assert report["fresh"]["consecutive_failures"] == 0
    assert report["fresh"]["last_success_at"] == report["fresh"]["last_run_at"]
    assert report["stubborn"]["consecutive_failures"] == 2
    assert report["stubborn"]["last_success_at"] is None
    # Two failures: twice the hourly interval after the last run started.
    due = datetime.strptime(report["stubborn"]["next_due"], "%Y-%m-%dT%H:%M:%SZ")
    last = datetime.strptime(report["stubborn"]["last_run_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert timedelta(minutes=119) <= due - last <= timedelta(hours=2)
    # Posts a minute apart: silent after 2 × the interval (2h) rather than 3 × the gap (3m).
    assert report["quiet"]["silent_after_seconds"] == 7200
    assert report["newcomer"]["last_run_at"] is None
    assert report["retired"]["state"] == "removed"


def test_status_says_how_late_the_backlog_is(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas
) -> None:
    replay.route("/often.xml", make_rss("often", 1))
    replay.route("/rare.xml", make_rss("rare", 1))
    write_sources(f"""
        defaults: {{request_delay: 0s}}
        sources:
          - {{id: often, type: rss, url: "{replay.url}/often.xml", schedule: {{every: 6s}}}}
          - {{id: rare, type: rss, url: "{replay.url}/rare.xml", schedule: {{every: 1h}}}}
    """)
    assert glas("run", "--all").returncode == 0
    on_time = glas("status")
    assert "backlog" not in on_time.stdout
    # `often` is due 6 s after its run (room for a slow machine to start `glas status` on
    # time), and nothing has collected it since.
    time.sleep(8.5)
    late = glas("status")
    assert re.search(
        r"^backlog: 1 collection late, oldest (?:[2-9]|\d\d)s \(the harvester is not keeping up\)$",
        late.stdout,
        re.M,
    ), late.stdout
