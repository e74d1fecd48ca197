"""`glas run` end to end: the real command as a subprocess, feeds on a loopback replay server,
the inbox read back with sqlite3.

Scrapy's reactor runs once per process, so every run here is its own `glas run`.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spiders.rss import id_scope
from tests.conftest import FIXTURES, Background, shared
from tests.replay import ReplayServer

pytestmark = pytest.mark.slow

Glas = Callable[..., subprocess.CompletedProcess[str]]
EDITED_FROM = "Жители пяти пятиэтажек получат новые квартиры."
EDITED_TO = "Жители пяти пятиэтажек получат новые квартиры до конца года."


# -- helpers -------------------------------------------------------------------------------------
def make_rss(
    prefix: str,
    count: int,
    *,
    first: int = 1,
    next_href: str | None = None,
    newest: datetime = datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
) -> str:
    """A made-up RSS 2.0 feed: entries ``<prefix>-<n>`` with distinct texts, newest first."""
    items = []
    for n in range(first, first + count):
        when = email_date(newest - timedelta(minutes=n))
        items.append(
            f"<item><title>Обращение {prefix} № {n}</title>"
            f'<guid isPermaLink="false">{prefix}-{n}</guid>'
            f"<link>https://feeds.example/{prefix}/{n}</link>"
            f"<description>Жалоба номер {n} из ленты {prefix}: во дворе дома {n} "
            f"не убирают снег.</description><pubDate>{when}</pubDate></item>"
        )
    paging = f'<atom:link rel="next" href="{next_href}"/>' if next_href else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        f"<title>Лента {prefix}</title><link>https://feeds.example/{prefix}/</link>"
        f"<description>Выдуманная лента для тестов</description>{paging}"
        f"{''.join(items)}</channel></rss>\n"
    )


def email_date(value: datetime) -> str:
    return value.strftime("%a, %d %b %Y %H:%M:%S +0000")


def query(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def scalar(db: Path, sql: str, *params: Any) -> Any:
    return query(db, sql, *params)[0][0]


def post_seqs(db: Path) -> dict[str, int]:
    return {r["native_id"]: r["seq"] for r in query(db, "SELECT native_id, seq FROM posts")}


def runs(db: Path, source_id: str) -> list[sqlite3.Row]:
    return query(db, "SELECT * FROM runs WHERE source_id = ? ORDER BY run_id", source_id)


def state(db: Path, source_id: str) -> sqlite3.Row:
    return query(db, "SELECT * FROM source_state WHERE source_id = ?", source_id)[0]


def requests_to(replay: ReplayServer, path: str) -> list[Any]:
    return [r for r in replay.requests if r.path.split("?", 1)[0] == path]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    """No traceback and no Scrapy chatter: only Glas's own lines."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert all(line.startswith("glas") for line in lines(result.stderr)), result.stderr


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "inbox.db"


@pytest.fixture(scope="module")
def mos_feed() -> bytes:
    return shared("fixtures/rss_mos_ru_news_2022-07-27.xml").read_bytes()


@pytest.fixture(scope="module")
def mos_links(mos_feed: bytes) -> list[str]:
    return [item.findtext("link") for item in ET.fromstring(mos_feed).iter("item")]


# -- first run, second run -----------------------------------------------------------------------
def test_first_run_stores_posts_and_second_run_is_a_304(
    replay: ReplayServer,
    write_sources: Callable[[str], Path],
    glas: Glas,
    db: Path,
    mos_feed: bytes,
    mos_links: list[str],
) -> None:
    replay.route("/mos/rss.xml", mos_feed)
    replay.route("/off/rss.xml", make_rss("off", 2))
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: mos-news
            type: rss
            url: {replay.url}/mos/rss.xml
            municipality: Москва
          - id: switched-off
            type: rss
            url: {replay.url}/off/rss.xml
            enabled: false
    """)

    first = glas("run", "--all")
    assert first.returncode == 0, first.stderr
    # Not a terminal: the one-line summary on stdout and nothing else.
    assert lines(first.stdout) == [first.stdout.strip()]
    assert first.stdout.startswith("glas run: 1 source, 1 ok, 0 failed; 10 new, 0 updated")
    assert first.stderr == ""
    rows = query(db, "SELECT * FROM posts ORDER BY seq")
    assert len(rows) == 10
    assert sorted(r["native_id"] for r in rows) == sorted(mos_links)
    assert {(r["platform"], r["source_id"], r["municipality"]) for r in rows} == {
        ("rss", "mos-news", "Москва")
    }
    by_id = {r["native_id"]: r for r in rows}
    first_item = by_id["https://www.mos.ru/news/item/110547073/"]
    assert first_item["url"] == "https://www.mos.ru/news/item/110547073/"
    assert first_item["published_at"] == "2022-07-27T08:01:01Z"
    assert first_item["title"].startswith("«Моспром вдохновляет»")
    assert "Технополис" in first_item["text"]
    assert all(r["cluster_id"] is not None for r in rows)
    assert [r["status"] for r in runs(db, "mos-news")] == ["ok"]
    assert runs(db, "mos-news")[0]["new"] == 10
    assert replay.hits("/off/rss.xml") == 0, "a disabled source was collected"
    assert runs(db, "switched-off") == []
    seq_before = post_seqs(db)
    last_seq = scalar(db, "SELECT value FROM counters WHERE name = 'seq'")

    second = glas("run", "--all", "--progress")
    assert second.returncode == 0, second.stderr
    request = requests_to(replay, "/mos/rss.xml")[-1]
    assert request.headers.get("If-None-Match"), "the stored ETag was not sent"
    assert request.headers.get("If-Modified-Since"), "the stored Last-Modified was not sent"
    assert request.status == 304
    assert post_seqs(db) == seq_before
    assert scalar(db, "SELECT value FROM counters WHERE name = 'seq'") == last_seq
    assert scalar(db, "SELECT max(seq) FROM posts") == max(seq_before.values())
    last = runs(db, "mos-news")[-1]
    assert (last["status"], last["new"], last["updated"], last["unchanged"]) == ("ok", 0, 0, 0)
    # --progress: a table on stdout, progress lines on stderr, the summary line last.
    out = lines(second.stdout)
    assert out[0].split()[:3] == ["source", "status", "new"]
    assert out[2].split()[:3] == ["mos-news", "ok", "0"]
    assert out[-1].startswith("glas run: 1 source, 1 ok, 0 failed; 0 new")
    assert "mos-news" in second.stderr
    assert "Traceback" not in second.stdout + second.stderr


def test_feed_without_validators_is_fetched_again_and_unchanged(
    replay: ReplayServer,
    write_sources: Callable[[str], Path],
    glas: Glas,
    db: Path,
    mos_feed: bytes,
) -> None:
    replay.route("/plain.xml", mos_feed, conditional=False)
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: plain
            type: rss
            url: {replay.url}/plain.xml
    """)
    assert glas("run", "--all").returncode == 0
    before = post_seqs(db)
    assert len(before) == 10

    second = glas("run", "--all")
    assert second.returncode == 0, second.stderr
    request = requests_to(replay, "/plain.xml")[-1]
    assert request.headers.get("If-None-Match") is None
    assert request.headers.get("If-Modified-Since") is None
    assert request.status == 200
    assert "0 new, 0 updated, 10 unchanged" in second.stdout
    last = runs(db, "plain")[-1]
    assert (last["status"], last["new"], last["updated"], last["unchanged"]) == ("ok", 0, 0, 10)
    assert post_seqs(db) == before


def test_edited_entry_is_updated_in_place_with_a_new_seq(
    replay: ReplayServer,
    write_sources: Callable[[str], Path],
    glas: Glas,
    db: Path,
    mos_feed: bytes,
) -> None:
    replay.route("/mos.xml", mos_feed)
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: mos
            type: rss
            url: {replay.url}/mos.xml
    """)
    assert glas("run", "--all").returncode == 0
    edited_id = "https://www.mos.ru/news/item/110534073/"
    posts_before = {r["native_id"]: r for r in query(db, "SELECT * FROM posts")}
    assert posts_before[edited_id]["text"] == EDITED_FROM
    clusters_before = {
        r["cluster_id"]: r["seq"] for r in query(db, "SELECT cluster_id, seq FROM clusters")
    }
    top = scalar(db, "SELECT value FROM counters WHERE name = 'seq'")

    assert mos_feed.count(EDITED_FROM.encode()) == 1
    replay.route("/mos.xml", mos_feed.replace(EDITED_FROM.encode(), EDITED_TO.encode()))
    second = glas("run", "--all")
    assert second.returncode == 0, second.stderr
    assert requests_to(replay, "/mos.xml")[-1].status == 200
    assert "0 new, 1 updated, 9 unchanged" in second.stdout

    posts_after = {r["native_id"]: r for r in query(db, "SELECT * FROM posts")}
    assert len(posts_after) == 10
    edited = posts_after[edited_id]
    assert edited["text"] == EDITED_TO
    assert edited["id"] == posts_before[edited_id]["id"], "updated in place, not re-inserted"
    changed = {k for k in posts_after if posts_after[k]["seq"] != posts_before[k]["seq"]}
    assert changed == {edited_id}
    assert edited["seq"] > top
    clusters_after = {
        r["cluster_id"]: r["seq"] for r in query(db, "SELECT cluster_id, seq FROM clusters")
    }
    changed_clusters = {c for c, s in clusters_after.items() if clusters_before.get(c) != s}
    assert changed_clusters <= {edited["cluster_id"]}
    assert scalar(db, "SELECT count(DISTINCT seq) FROM posts") == 10


# -- failing sources -----------------------------------------------------------------------------
def test_http_500_fails_only_that_source_and_counts_consecutive_failures(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, db: Path
) -> None:
    replay.route("/good.xml", make_rss("good", 3))
    replay.route("/dead.xml", make_rss("dead", 2))
    replay.fault("/dead.xml", status=500)
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          retries: 1
        sources:
          - id: dead
            type: rss
            url: {replay.url}/dead.xml
          - id: good
            type: rss
            url: {replay.url}/good.xml
    """)

    first = glas("run", "--all")
    assert first.returncode == 1
    assert lines(first.stdout) == [first.stdout.strip()]
    assert "1 ok, 1 failed" in first.stdout and "(failed: dead)" in first.stdout
    assert lines(first.stderr) == [f"glas: dead: failed: HTTP 500 from {replay.url}/dead.xml"]
    assert_clean(first)
    assert replay.hits("/dead.xml") == 2  # the first try and one retry
    dead_run = runs(db, "dead")[-1]
    assert dead_run["status"] == "failed"
    assert "HTTP 500" in dead_run["error"]
    good_run = runs(db, "good")[-1]
    assert (good_run["status"], good_run["new"]) == ("ok", 3)
    assert scalar(db, "SELECT count(*) FROM posts WHERE source_id = 'good'") == 3
    assert scalar(db, "SELECT count(*) FROM posts WHERE source_id = 'dead'") == 0
    dead = state(db, "dead")
    assert (dead["last_status"], dead["consecutive_failures"]) == ("failed", 1)
    assert "HTTP 500" in dead["last_error"]
    assert state(db, "good")["consecutive_failures"] == 0

    assert glas("run", "--all").returncode == 1
    assert state(db, "dead")["consecutive_failures"] == 2
    assert state(db, "good")["consecutive_failures"] == 0

    replay.clear_faults()
    third = glas("run", "--all")
    assert third.returncode == 0, third.stderr
    dead = state(db, "dead")
    assert (dead["last_status"], dead["consecutive_failures"], dead["last_error"]) == (
        "ok",
        0,
        None,
    )
    assert scalar(db, "SELECT count(*) FROM posts WHERE source_id = 'dead'") == 2


def test_html_page_is_a_clear_error_and_a_bozo_feed_a_warning(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, db: Path
) -> None:
    page = (FIXTURES / "rss" / "not_a_feed.html").read_bytes()
    replay.route("/news", page, content_type="text/html; charset=utf-8")
    replay.route("/bozo.xml", (FIXTURES / "rss" / "rss_bozo.xml").read_bytes())
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: portal
            type: rss
            url: {replay.url}/news
          - id: sloppy
            type: rss
            url: {replay.url}/bozo.xml
    """)
    result = glas("run", "--all")
    assert result.returncode == 1
    assert_clean(result)
    error = runs(db, "portal")[-1]["error"]
    assert error == (
        f"not an RSS or Atom feed at {replay.url}/news: the server sent an HTML page, not a feed"
    )
    # Both sources crawl at once, so their lines come in either order.
    err = sorted(lines(result.stderr))
    assert err[0] == f"glas: portal: failed: {error}"
    # A malformed feed with entries is stored, with one warning line.
    assert len(err) == 2 and err[1].startswith("glas: sloppy: warning: malformed feed at")
    sloppy = runs(db, "sloppy")[-1]
    assert (sloppy["status"], sloppy["new"]) == ("ok", 2)
    assert "not well-formed" in json.loads(sloppy["warnings"])[0]
    assert "(failed: portal)" in result.stdout


def test_dropped_connection_and_timeout_are_clear_errors(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, db: Path
) -> None:
    replay.route("/drop.xml", make_rss("drop", 2))
    replay.fault("/drop.xml", drop=True)
    replay.route("/hang.xml", make_rss("hang", 2))
    replay.fault("/hang.xml", hang=True)
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
          retries: 1
        sources:
          - id: dropper
            type: rss
            url: {replay.url}/drop.xml
          - id: hanger
            type: rss
            url: {replay.url}/hang.xml
            timeout: 1
    """)
    began = time.monotonic()
    result = glas("run", "--all", timeout=60)
    assert time.monotonic() - began < 20
    assert result.returncode == 1
    assert_clean(result)
    dropped = f"the server closed the connection without an answer: {replay.url}/drop.xml"
    timed_out = f"no answer from {replay.url}/hang.xml within 1s"
    assert runs(db, "dropper")[-1]["error"] == dropped
    assert runs(db, "hanger")[-1]["error"] == timed_out
    assert sorted(lines(result.stderr)) == [
        f"glas: dropper: failed: {dropped}",
        f"glas: hanger: failed: {timed_out}",
    ]
    assert "(failed: dropper, hanger)" in result.stdout or "(failed: hanger, dropper)" in (
        result.stdout
    )


# -- choosing sources, the lock, paging ----------------------------------------------------------
def test_source_option_runs_only_that_source(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, db: Path
) -> None:
    replay.route("/a.xml", make_rss("a", 2))
    replay.route("/b.xml", make_rss("b", 3))
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: feed-a
            type: rss
            url: {replay.url}/a.xml
          - id: feed-b
            type: rss
            url: {replay.url}/b.xml
    """)
    result = glas("run", "--source", "feed-b")
    assert result.returncode == 0, result.stderr
    assert (replay.hits("/a.xml"), replay.hits("/b.xml")) == (0, 1)
    assert [r["source_id"] for r in query(db, "SELECT source_id FROM runs")] == ["feed-b"]
    assert scalar(db, "SELECT count(*) FROM posts") == 3

    unknown = glas("run", "--source", "feed-c")
    assert unknown.returncode == 2
    assert "no source with id 'feed-c'" in unknown.stderr
    assert "feed-a, feed-b" in unknown.stderr
    assert_clean(unknown)
    assert replay.hits("/a.xml") == 0
    assert scalar(db, "SELECT count(*) FROM runs") == 1


def test_lock_stops_a_second_run_while_the_first_goes_on(
    replay: ReplayServer,
    write_sources: Callable[[str], Path],
    glas: Glas,
    start_glas: Callable[..., Background],
    db: Path,
    tmp_path: Path,
) -> None:
    replay.route("/slow.xml", make_rss("slow", 2))
    replay.fault("/slow.xml", delay=12, times=1)  # outlasts the second run's start-up
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: slow
            type: rss
            url: {replay.url}/slow.xml
    """)
    first = start_glas("run", "--all")
    first.wait_until(lambda: replay.hits("/slow.xml") > 0, "the first run fetching the feed")
    second = glas("run", "--all")  # the first run holds the lock and waits on the feed
    assert second.returncode == 1
    assert lines(second.stderr) == [
        f"glas: slow: skipped: being collected by pid {first.process.pid}"
    ]
    assert (tmp_path / "inbox.db.locks" / "slow.lock").is_file()
    code, out, err = first.finish()
    assert code == 0, err
    assert "2 new" in out
    assert [r["status"] for r in runs(db, "slow")] == ["ok"]
    assert scalar(db, "SELECT count(*) FROM posts") == 2


def test_paged_feed_follows_rel_next_up_to_max_pages(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, db: Path
) -> None:
    for name in ("deep", "shallow"):
        replay.route(f"/{name}/1.xml", make_rss(name, 3, next_href="2.xml"))
        replay.route(
            f"/{name}/2.xml",
            make_rss(name, 3, first=4, newest=datetime(2026, 2, 1, tzinfo=UTC)),
        )
    replay.route("/loop/1.xml", make_rss("loop", 2, next_href="1.xml"))  # next = itself
    write_sources(f"""
        defaults:
          request_delay: 0s
          retry_backoff: 0s
        sources:
          - id: deep
            type: rss
            url: {replay.url}/deep/1.xml
            max_pages: 3
          - id: shallow
            type: rss
            url: {replay.url}/shallow/1.xml
          - id: loop
            type: rss
            url: {replay.url}/loop/1.xml
            max_pages: 3
    """)
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    ids = [r[0] for r in query(db, "SELECT native_id FROM posts WHERE source_id = 'deep'")]
    # Ids are scoped by the configured address, not by the page they were read on.
    scope = id_scope(f"{replay.url}/deep/1.xml")
    assert sorted(ids) == [f"{scope}#deep-{n}" for n in range(1, 7)]
    assert (replay.hits("/deep/1.xml"), replay.hits("/deep/2.xml")) == (1, 1)
    assert scalar(db, "SELECT count(*) FROM posts WHERE source_id = 'shallow'") == 3
    assert replay.hits("/shallow/2.xml") == 0  # max_pages defaults to 1
    # The ETag of page 1 is saved with the last page, with the newest entry's time.
    cursor = json.loads(state(db, "deep")["cursor"])
    assert cursor["etag"]
    assert cursor["newest"].startswith("2026-03-02T11:59:00")
    # A next link that loops back ends the feed; the run still finishes and saves its ETag.
    assert replay.hits("/loop/1.xml") == 1
    assert runs(db, "loop")[-1]["status"] == "ok"
    assert json.loads(state(db, "loop")["cursor"])["etag"]
