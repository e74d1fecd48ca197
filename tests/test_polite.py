"""Polite crawling through a real `glas run`: robots.txt, User-Agent, pauses, Retry-After."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler.polite import retry_after_seconds
from tests.replay import ReplayServer
from tests.test_run_e2e import make_rss

Glas = Callable[..., subprocess.CompletedProcess[str]]


def feed_source(replay: ReplayServer, defaults: str = "", path: str = "/city/rss.xml") -> str:
    return f"""
        defaults:
          {defaults or "request_delay: 0s"}
        sources:
          - id: city-news
            type: rss
            url: {replay.url}{path}
    """


def times_of(replay: ReplayServer, path: str) -> list[float]:
    return [r.time for r in replay.requests if r.path == path]


def last_error(tmp_path: Path) -> str | None:
    with sqlite3.connect(tmp_path / "inbox.db") as conn:
        return conn.execute("SELECT error FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]


def test_robots_txt_forbidding_the_feed_fails_the_source_without_fetching_it(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas, tmp_path: Path
) -> None:
    replay.route("/robots.txt", "User-agent: *\nDisallow: /city/\n", content_type="text/plain")
    replay.route("/city/rss.xml", make_rss("city", 3))
    write_sources(feed_source(replay))
    result = glas("run", "--all")
    assert result.returncode == 1
    assert replay.hits("/city/rss.xml") == 0
    expected = f"robots.txt of the site forbids {replay.url}/city/rss.xml"
    assert expected in result.stderr
    assert last_error(tmp_path).startswith(expected)  # type: ignore[union-attr]


def test_user_agent_names_glas_and_the_operator_contact(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas
) -> None:
    replay.route("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    replay.route("/city/rss.xml", make_rss("city", 3))
    write_sources(
        feed_source(replay, "request_delay: 0s\n          contact: https://cur.example.ru/glas")
    )
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    agents = {r.headers.get("User-Agent") for r in replay.requests}
    assert agents == {
        "Glas/0.1 (+https://cur.example.ru/glas; harvester of a regional management centre)"
    }
    assert replay.hits("/robots.txt") == 1 and replay.hits("/city/rss.xml") == 1


def test_short_retry_after_is_waited_for_then_the_request_retried(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas
) -> None:
    replay.route("/city/rss.xml", make_rss("city", 3))
    replay.fault("/city/rss.xml", status=429, times=1, headers={"Retry-After": "1"})
    write_sources(feed_source(replay, "request_delay: 0s\n          retry_backoff: 0s"))
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    first, second = times_of(replay, "/city/rss.xml")
    assert second - first >= 0.9, "Retry-After: 1 must be honoured even with retry_backoff 0s"
    assert "3 new" in result.stdout


def test_long_retry_after_fails_the_source_at_once_saying_so(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas, tmp_path: Path
) -> None:
    replay.fault("/city/rss.xml", status=429, headers={"Retry-After": "3600"})
    write_sources(feed_source(replay))
    result = glas("run", "--all")
    assert result.returncode == 1
    assert replay.hits("/city/rss.xml") == 1, "no retry storm against a site asking to wait"
    assert last_error(tmp_path) == (
        f"HTTP 429 from {replay.url}/city/rss.xml: the site asks to wait 3600s (Retry-After); "
        "the next run tries again"
    )


def test_server_errors_are_retried_after_a_doubling_pause(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas
) -> None:
    replay.route("/city/rss.xml", make_rss("city", 2))
    replay.fault("/city/rss.xml", status=503, times=2)
    write_sources(
        feed_source(
            replay, "request_delay: 0s\n          retry_backoff: 0.4s\n          retries: 2"
        )
    )
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    one, two, three = times_of(replay, "/city/rss.xml")
    assert two - one >= 0.35 and three - two >= 0.75  # 0.4s, then 0.8s


def test_request_delay_spaces_requests_to_one_site(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas
) -> None:
    pages = [f"/paged/{n}.xml" for n in (1, 2, 3)]
    for n, path in enumerate(pages, 1):
        following = f"{replay.url}{pages[n]}" if n < len(pages) else None
        replay.route(path, make_rss(f"p{n}", 2, next_href=following))
    write_sources(f"""
        defaults:
          request_delay: 0.6s
        sources:
          - id: paged
            type: rss
            url: {replay.url}{pages[0]}
            max_pages: 3
    """)
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    times = sorted(r.time for r in replay.requests)  # robots.txt and the three pages
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.25, gaps  # 0.6s ± 50% jitter


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 25 Nov 2026 12:01:00 GMT", 60.0),
        ("Wed, 25 Nov 2026 11:00:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_header_forms(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert retry_after_seconds(header, now) == seconds
    if header is not None:
        assert retry_after_seconds(header.encode(), now) == seconds


def test_backoff_is_capped() -> None:
    from scrapy.http import Request
    from scrapy.settings import Settings

    from crawler.polite import MAX_BACKOFF, BackoffRetryMiddleware

    middleware = BackoffRetryMiddleware(Settings({"GLAS_RETRY_BACKOFF": 2.0}))
    pauses = [
        middleware._backoff(Request("http://x.invalid/", meta={"retry_times": n}))
        for n in range(10)
    ]
    assert pauses[:4] == [2.0, 4.0, 8.0, 16.0]
    assert max(pauses) == MAX_BACKOFF
    assert timedelta(seconds=MAX_BACKOFF) <= timedelta(minutes=2)
