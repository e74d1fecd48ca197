"""Plain-text values stay literal; HTML entities do not make a feed malformed.

Feeds are made up here: Atom and RSS values typed as plain text that contain "<" and "&",
Russian feeds with ``&laquo;``/``&nbsp;`` (HTML entities, undefined in XML), with and without
items, and truly malformed feeds (cut short) that must still fail.
"""

from __future__ import annotations

import codecs
import json
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pytest

from crawler.normalize import normalise
from spiders.rss import ParsedFeed, parse_feed
from tests.replay import ReplayServer

Glas = Callable[..., subprocess.CompletedProcess[str]]
URL = "https://uprava.example/rss"


def atom(entry: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Управа</title><id>urn:uprava</id><entry><id>urn:e1</id>{entry}</entry></feed>"
    ).encode()


def normalised(feed: ParsedFeed) -> list[tuple[str | None, str]]:
    return [(p.title, p.text) for p in (normalise(post, UTC) for post in feed.posts)]


# -- plain text ----------------------------------------------------------------------------------
def test_text_plain_title_keeps_its_angle_brackets() -> None:
    feed = parse_feed(atom('<title type="text">History of the &lt;blink&gt; tag</title>'), URL)
    assert feed.posts[0].plain_fields == ("title",)
    assert normalised(feed) == [("History of the <blink> tag", "")]


def test_text_plain_summary_and_content_keep_markup_like_text() -> None:
    summary = (
        '<summary type="text">Пишите на &lt;priem@uprava.example&gt; &amp;amp; звоните</summary>'
    )
    feed = parse_feed(atom(summary), URL)
    assert normalised(feed) == [(None, "Пишите на <priem@uprava.example> &amp; звоните")]
    content = (
        '<content type="text">a &lt; b, &lt;b&gt;не жирный&lt;/b&gt;\n  вторая строка</content>'
    )
    feed = parse_feed(atom(content), URL)
    assert feed.posts[0].plain_fields == ("text",)
    assert normalised(feed) == [(None, "a < b, <b>не жирный</b>\nвторая строка")]


def test_html_values_are_still_read_as_html() -> None:
    entry = (
        '<title type="html">&lt;b&gt;Ремонт&lt;/b&gt; дороги</title>'
        '<content type="html">&lt;p&gt;Первый&lt;/p&gt;'
        "&lt;p&gt;Второй &amp;laquo;абзац&amp;raquo;&lt;/p&gt;</content>"
    )
    feed = parse_feed(atom(entry), URL)
    assert feed.posts[0].plain_fields == ()
    assert normalised(feed) == [("Ремонт дороги", "Первый\n\nВторой «абзац»")]


def test_rss_title_is_plain_unless_it_looks_like_html() -> None:
    """RSS does not type its titles: feedparser calls them plain unless they hold closing
    tags or entities of HTML, which the HTML reading then removes."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        "<item><guid isPermaLink='false'>1</guid><title>Тег &lt;blink&gt; устарел</title>"
        "<description>&lt;p&gt;Текст&lt;/p&gt;</description></item>"
        "<item><guid isPermaLink='false'>2</guid><title>&lt;b&gt;Важно&lt;/b&gt;: вода</title>"
        "</item></channel></rss>"
    ).encode()
    assert normalised(parse_feed(body, URL)) == [
        ("Тег <blink> устарел", "Текст"),
        ("Важно: вода", ""),
    ]


# -- HTML entities -------------------------------------------------------------------------------
def rss(title: str, items: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://uprava.example/</link>"
        f"<description>Новости&nbsp;управы</description>{items}</channel></rss>\n"
    ).encode()


ITEM = (
    "<item><guid isPermaLink='false'>7</guid><title>Конкурс &laquo;Двор&raquo;</title>"
    "<description><![CDATA[<p>Итоги &laquo;конкурса&raquo; &mdash; в пятницу</p>]]></description>"
    "</item>"
)


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8], ids=["plain", "byte-order-mark"])
def test_html_entities_in_an_empty_feed_are_no_malformation(bom: bytes) -> None:
    feed = parse_feed(bom + rss("&laquo;Вести управы&raquo;"), URL, "application/rss+xml")
    assert (feed.is_feed, feed.problem, feed.posts) == (True, None, [])
    assert feed.title == "«Вести управы»"


def test_html_entities_around_items_are_read_as_characters() -> None:
    feed = parse_feed(rss("&laquo;Вести&raquo;", ITEM), URL, "application/rss+xml")
    assert feed.problem is None
    assert normalised(feed) == [("Конкурс «Двор»", "Итоги «конкурса» — в пятницу")]


def test_entities_inside_cdata_stay_as_written() -> None:
    """CDATA holds HTML: its entities are the HTML reading's to decode, not rewritten."""
    [post] = parse_feed(rss("t", ITEM), URL).posts
    assert "&laquo;конкурса&raquo; &mdash;" in post.text


@pytest.mark.parametrize(
    "body",
    [
        rss("&laquo;Вести&raquo;")[:-20],  # cut short after the channel's description
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>',
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>&bogus;</title></channel></rss>',
    ],
    ids=["cut-with-entities", "cut", "unknown-entity"],
)
def test_truly_malformed_empty_feeds_are_still_problems(body: bytes) -> None:
    feed = parse_feed(body, URL, "application/rss+xml")
    assert feed.posts == [] and feed.problem is not None


def test_glas_run_entity_feed_without_items_is_ok_and_a_cut_one_fails(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, tmp_path: Path
) -> None:
    replay.route("/empty.xml", rss("&laquo;Вести&raquo;"))
    replay.route("/full.xml", rss("&laquo;Вести&raquo;", ITEM))
    replay.route("/cut.xml", rss("&laquo;Вести&raquo;")[:-20])
    write_sources(
        "defaults:\n  request_delay: 0s\n  retry_backoff: 0s\n  retries: 0\nsources:\n"
        + "".join(
            f"  - id: {name}\n    type: rss\n    url: {replay.url}/{name}.xml\n"
            for name in ("empty", "full", "cut")
        )
    )
    result = glas("run", "--all")
    assert result.returncode == 1, result.stderr
    assert "3 sources, 2 ok, 1 failed; 1 new" in result.stdout
    conn = sqlite3.connect(tmp_path / "inbox.db")
    try:
        runs = {
            row[0]: row[1:]
            for row in conn.execute("SELECT source_id, status, new, warnings, error FROM runs")
        }
        titles = dict(conn.execute("SELECT source_id, title FROM sources"))
    finally:
        conn.close()
    assert runs["empty"][:2] == ("ok", 0) and runs["full"][:2] == ("ok", 1)
    assert not json.loads(runs["empty"][2] or "[]") and not json.loads(runs["full"][2] or "[]")
    assert titles["empty"] == titles["full"] == "«Вести»"
    assert runs["cut"][0] == "failed"
    assert runs["cut"][3].startswith(f"malformed feed at {replay.url}/cut.xml, no entry readable")
