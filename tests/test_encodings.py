"""Feeds and pages in an encoding they do not declare, or declare wrongly, are read right.

Documents are made up here with real Russian text, encoded by the test in KOI8-R,
windows-1251 and others, and served by the replay server without (or with a wrong) charset;
`glas run` must store correct Russian. Correct declarations must still be trusted.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from spiders.charsets import read_as
from spiders.html_selectors import decode_html, read_page
from spiders.rss import parse_feed
from tests.conftest import FIXTURES, shared
from tests.replay import ReplayServer

Glas = Callable[..., subprocess.CompletedProcess[str]]
TITLE = "Жители жалуются на мусор"
TEXT = (
    "Во дворе дома на улице Ленина уже неделю не вывозят мусор, контейнеры переполнены. "
    "Управляющая компания не отвечает на звонки, жители просят администрацию помочь."
)
DEFAULTS = "defaults:\n  request_delay: 0s\n  retry_backoff: 0s\n  retries: 0\nsources:\n"


def feed(encoding: str, *, declared: str | None = None, title: str = TITLE) -> bytes:
    """An RSS feed in ``encoding``; its XML declaration names ``declared`` (or nothing)."""
    head = f'<?xml version="1.0" encoding="{declared}"?>' if declared else '<?xml version="1.0"?>'
    return (
        f'{head}\n<rss version="2.0"><channel><title>Новости района</title>'
        "<link>https://rayon.example/</link><description>Лента</description>"
        f"<item><title>{title}</title><guid isPermaLink='false'>1</guid>"
        f"<description>{TEXT}</description></item></channel></rss>\n"
    ).encode(encoding)


# Without ы, ь, я: windows-1251 bytes of these decode as windows-1255 without an error.
HEBREW_SAFE = (
    "Снег во дворе не убирают",
    "Во дворе дома на улице Ленина давно не убирают снег, жители ждут помощи от администрации.",
)


def page(encoding: str, *, meta: str | None = None, title: str = TITLE, text: str = TEXT) -> bytes:
    """A news list page in ``encoding``, with a ``<meta>`` charset only when ``meta`` is given."""
    head = f'<meta charset="{meta}">' if meta else ""
    return (
        f"<html><head>{head}<title>Новости района</title></head><body><div class='news'>"
        f"<div class='item'><a href='news/1'>{title}</a><p>{text}</p></div>"
        "</div></body></html>"
    ).encode(encoding)


def stored(db: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT source_id, title, text FROM posts ORDER BY source_id"
        ).fetchall()
    finally:
        conn.close()


def warnings_of(db: Path, source_id: str) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        (value,) = conn.execute(
            "SELECT warnings FROM runs WHERE source_id = ? ORDER BY run_id DESC LIMIT 1",
            (source_id,),
        ).fetchone()
    finally:
        conn.close()
    return json.loads(value) if value else []


# -- choosing the encoding -----------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["koi8-r", "cp1251", "cp866", "iso-8859-5", "mac-cyrillic"])
def test_undeclared_cyrillic_is_recognised(encoding: str) -> None:
    body = feed(encoding)
    reading = read_as(body)
    assert body.decode(reading.encoding) == body.decode(encoding)
    # Mac Cyrillic differs from windows-1251 in a few letters only: a close guess.
    assert reading.sure is (encoding != "mac-cyrillic")


@pytest.mark.parametrize(
    ("encoding", "declared"),
    [
        ("cp1251", "windows-1251"),
        ("koi8-r", "koi8-r"),
        ("cp1252", "windows-1252"),
        ("mac-cyrillic", "x-mac-cyrillic"),  # reads almost as windows-1251 does: still trusted
        ("iso-8859-5", "iso-8859-5"),
    ],
)
def test_a_right_declaration_is_trusted(encoding: str, declared: str) -> None:
    text = "Café de la Gare: résumé des travaux, à bientôt" if encoding == "cp1252" else TEXT
    body = f"<p>{text}</p>".encode(encoding)
    reading = read_as(body, [declared])
    assert body.decode(reading.encoding) == f"<p>{text}</p>"
    assert reading.sure


@pytest.mark.parametrize("wrong", ["windows-1251", "windows-1255", "iso-8859-5", "utf-8"])
def test_a_wrong_declaration_is_overruled(wrong: str) -> None:
    body = f"<p>{TEXT}</p>".encode("koi8-r")
    body.decode("cp1251")  # the wrong reading raises nothing: only the letters are off
    reading = read_as(body, [wrong])
    assert (reading.encoding, reading.sure) == ("koi8-r", True)


def test_valid_utf8_wins_over_any_declaration_and_ascii_follows_it() -> None:
    assert read_as(TEXT.encode(), ["windows-1251"]).encoding == "utf-8"
    assert read_as(b"<p>plain</p>", ["koi8-r"]).encoding == "koi8-r"
    assert read_as(b"<p>plain</p>").encoding == "utf-8"


def test_a_short_guess_is_unsure() -> None:
    reading = read_as("<p>Прорыв теплотрассы</p>".encode("cp1251"))
    assert (reading.encoding, reading.sure) == ("cp1251", False)


# -- feeds ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["application/rss+xml", "text/xml", None])
@pytest.mark.parametrize("encoding", ["koi8-r", "cp1251"])
def test_undeclared_feed_is_parsed_in_its_encoding(encoding: str, content_type: str | None) -> None:
    parsed = parse_feed(feed(encoding), "https://rayon.example/rss", content_type)
    [post] = parsed.posts
    assert (post.title, post.text) == (TITLE, TEXT)
    assert parsed.uncertain_encoding is None
    assert parsed.problem is None


def test_feed_declared_windows_1251_but_in_koi8_is_read_as_koi8() -> None:
    for content_type in ("application/rss+xml; charset=windows-1251", "application/rss+xml"):
        parsed = parse_feed(
            feed("koi8-r", declared="windows-1251"), "https://r.example/", content_type
        )
        assert (parsed.posts[0].title, parsed.posts[0].text) == (TITLE, TEXT)


def test_declared_feeds_are_unchanged() -> None:
    """The windows-1251 fixture (declared) and the real mos.ru feed (UTF-8) read as before."""
    cp1251 = parse_feed(
        (FIXTURES / "rss" / "rss_windows1251.xml").read_bytes(), "https://u.example/rss"
    )
    assert cp1251.uncertain_encoding is None
    assert "Аэропорт" in (cp1251.title or "")
    mos = parse_feed(shared("fixtures/rss_mos_ru_news_2022-07-27.xml").read_bytes(), "https://m/")
    assert mos.title == "Официальный портал Мэра и Правительства Москвы"


def test_undeclared_utf8_feed_without_content_type() -> None:
    """No charset and no Content-Type: feedparser would read ISO-8859-1; UTF-8 is right."""
    [post] = parse_feed(feed("utf-8"), "https://rayon.example/rss", None).posts
    assert post.title == TITLE


def test_glas_run_stores_undeclared_feeds_in_russian(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, tmp_path: Path
) -> None:
    replay.route("/koi8.xml", feed("koi8-r"), content_type="application/rss+xml")
    replay.route("/cp1251.xml", feed("cp1251"), content_type="text/xml")
    write_sources(
        DEFAULTS
        + "".join(
            f"  - id: {name}\n    type: rss\n    url: {replay.url}/{name}.xml\n"
            for name in ("koi8", "cp1251")
        )
    )
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    db = tmp_path / "inbox.db"
    assert stored(db) == [("cp1251", TITLE, TEXT), ("koi8", TITLE, TEXT)]
    assert warnings_of(db, "koi8") == warnings_of(db, "cp1251") == []


def test_glas_run_warns_when_the_encoding_is_a_close_guess(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, tmp_path: Path
) -> None:
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Лента</title>'
        "<item><guid isPermaLink='false'>1</guid><title>Прорыв теплотрассы</title></item>"
        "</channel></rss>"
    ).encode("cp1251")
    replay.route("/short.xml", body, content_type="application/rss+xml")
    write_sources(DEFAULTS + f"  - id: short\n    type: rss\n    url: {replay.url}/short.xml\n")
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    db = tmp_path / "inbox.db"
    assert stored(db) == [("short", "Прорыв теплотрассы", "")]
    assert warnings_of(db, "short") == [
        f"encoding of {replay.url}/short.xml is uncertain: read as cp1251"
    ]


# -- web pages -----------------------------------------------------------------------------------
def test_koi8_page_without_any_charset() -> None:
    decoded = decode_html(page("koi8-r"), None)
    assert (decoded.encoding, decoded.sure) == ("koi8-r", True)
    assert TEXT in decoded.text


def test_windows_1255_header_on_a_windows_1251_page() -> None:
    title, text = HEBREW_SAFE
    body = page("cp1251", title=title, text=text)
    assert text not in body.decode("cp1255")  # the header alone garbles it, without an error
    decoded = decode_html(body, "windows-1255")
    assert (decoded.encoding, decoded.sure) == ("cp1251", True)
    assert text in decoded.text


def test_read_page_names_an_unsure_encoding() -> None:
    body = "<html><body><p>Прорыв теплотрассы</p></body></html>".encode("cp1251")
    page_read, uncertain = read_page(body, "https://a.example/", None, None)
    assert (page_read.css("p::text").get(), uncertain) == ("Прорыв теплотрассы", "cp1251")
    assert read_page(page("koi8-r"), "https://a.example/", None, None)[1] is None


def test_right_meta_and_header_are_trusted() -> None:
    assert decode_html(page("koi8-r", meta="koi8-r"), None).encoding == "koi8-r"
    assert decode_html(page("cp1251"), "windows-1251").encoding == "cp1251"
    assert decode_html(page("cp1251", meta="windows-1251"), "koi8-r").encoding == "cp1251"


def test_glas_run_stores_mislabelled_pages_in_russian(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, tmp_path: Path
) -> None:
    replay.route("/koi8/", page("koi8-r"), content_type="text/html")
    title, text = HEBREW_SAFE
    hebrew = page("cp1251", title=title, text=text)
    replay.route("/hebrew/", hebrew, content_type="text/html; charset=windows-1255")
    short = (
        "<html><body><div class='news'><div class='item'><a href='news/1'>Прорыв трубы</a>"
        "<p>Прорыв теплотрассы</p></div></div></body></html>"
    ).encode("cp1251")
    replay.route("/short/", short, content_type="text/html")
    write_sources(
        DEFAULTS
        + "".join(
            f"  - id: {name}\n    type: html\n    url: {replay.url}/{name}/\n"
            "    item: .news .item\n    text: p\n"
            for name in ("koi8", "hebrew", "short")
        )
    )
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    db = tmp_path / "inbox.db"
    assert stored(db) == [
        ("hebrew", title, text),
        ("koi8", TITLE, TEXT),
        ("short", "Прорыв трубы", "Прорыв теплотрассы"),
    ]
    assert warnings_of(db, "koi8") == warnings_of(db, "hebrew") == []
    assert warnings_of(db, "short") == [
        f"encoding of {replay.url}/short/ is uncertain: read as cp1251 "
        "(set `encoding` if that is wrong)"
    ]
