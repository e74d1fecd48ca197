"""`glas run` on `html` sources end to end: the real command, made-up municipal sites on the
replay server (tests/fixtures/html/), the inbox read back with sqlite3.

- zarechny: Bitrix-style news in UTF-8, list page + page 2 + item pages (``follow``);
- sosnovka: «интернет-приёмная» in windows-1251 (XPath selectors), questions with the
  administration's answers on their own pages.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.replay import ReplayServer

pytestmark = pytest.mark.slow

Glas = Callable[..., subprocess.CompletedProcess[str]]
SITES = FIXTURES / "html"
ZARECHNY_ITEMS = [1046, 1045, 1044, 1043, 1042, 1041, 1040]
SOSNOVKA_ITEMS = [318, 317, 316, 315, 314]
DEFAULTS = """
    defaults:
      request_delay: 0s
      retry_backoff: 0s
      timezone: Europe/Moscow
      retries: 0
"""


def zarechny_source(base: str, **extra: str) -> str:
    lines = [
        "  - id: zarechny-news",
        "    type: html",
        f"    url: {base}/zarechny/news/",
        "    item: .news-list .news-item",
        "    date: .news-date-time",
        "    next_page: a.modern-page-next",
        "    follow:",
        "      text: .news-detail-text",
        "      author: .news-detail-author span",
    ]
    lines += [f"    {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines)


def sosnovka_source(base: str) -> str:
    return f"""
  - id: sosnovka-priemnaya
    type: html
    url: {base}/sosnovka/priemnaya/
    item: //table[@class='qa-list']//tr[td]
    link: td.qa-subject a
    title: ./td[@class='qa-subject']
    date: ./td[2]
    next_page: "xpath://div[@class='pager']/a[contains(., 'Следующая')]/@href"
    follow:
      text: .question-text
      date: .question-head
      author: .question-author b
      answer: .answer-text
      answer_author: .answer-author
      answer_date: .answer-date"""


def sources(*blocks: str) -> str:
    return (
        DEFAULTS
        + "    sources:\n"
        + "\n".join(
            "\n".join("    " + line for line in block.strip("\n").splitlines()) for block in blocks
        )
    )


def serve(replay: ReplayServer, site: str, content_type: str | None = None) -> None:
    """Route every file of a fixture site under /<site>/; index.html also at its folder."""
    for path in sorted((SITES / site).rglob("*.html")):
        url = "/" + path.relative_to(SITES).as_posix()
        replay.route(url, path.read_bytes(), content_type=content_type)
        if path.name == "index.html":
            replay.route(
                url.removesuffix("index.html"), path.read_bytes(), content_type=content_type
            )


def query(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def posts(db: Path, source_id: str) -> dict[str, sqlite3.Row]:
    rows = query(db, "SELECT * FROM posts WHERE source_id = ?", source_id)
    return {r["native_id"]: r for r in rows}


def last_run(db: Path, source_id: str) -> sqlite3.Row:
    return query(db, "SELECT * FROM runs WHERE source_id = ? ORDER BY run_id DESC", source_id)[0]


def item_hits(replay: ReplayServer, site: str, ids: list[int]) -> dict[int, int]:
    page = "news/{}.html" if site == "zarechny" else "priemnaya/vopros-{}.html"
    return {n: replay.hits(f"/{site}/" + page.format(n)) for n in ids}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "inbox.db"


def test_two_sites_first_run_then_incremental(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas, db: Path
) -> None:
    serve(replay, "zarechny")
    serve(replay, "sosnovka", "text/html; charset=windows-1251")
    write_sources(sources(zarechny_source(replay.url), sosnovka_source(replay.url)))

    first = glas("run", "--all")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    news = posts(db, "zarechny-news")
    base = f"{replay.url}/zarechny/news"
    assert sorted(news) == sorted(f"{base}/{n}.html" for n in ZARECHNY_ITEMS)
    boiler = news[f"{base}/1046.html"]
    assert (boiler["platform"], boiler["kind"], boiler["url"]) == (
        "web",
        "post",
        f"{base}/1046.html",
    )
    assert boiler["title"] == "На котельной № 3 завершили замену насосов"
    assert boiler["text"].startswith("Специалисты МУП «Теплосеть» завершили замену")
    assert "холодные батареи" in boiler["text"]
    assert boiler["author_name"] == "Пресс-служба администрации"
    assert boiler["published_at"] == "2020-11-18T13:29:00Z"
    assert news[f"{base}/1043.html"]["author_name"] is None
    assert news[f"{base}/1041.html"]["published_at"] == "2020-11-11T21:00:00Z"
    assert last_run(db, "zarechny-news")["status"] == "ok"

    qa = posts(db, "sosnovka-priemnaya")
    qbase = f"{replay.url}/sosnovka/priemnaya"
    questions = {k: v for k, v in qa.items() if v["kind"] == "post"}
    answers = {k: v for k, v in qa.items() if v["kind"] == "comment"}
    assert sorted(questions) == sorted(f"{qbase}/vopros-{n}.html" for n in SOSNOVKA_ITEMS)
    assert len(answers) == 4  # 318 waits for its answer
    pit = questions[f"{qbase}/vopros-317.html"]
    assert pit["title"] == "Яма на дороге у остановки «Школа»"
    assert pit["author_name"] == "Водитель автобуса № 4"
    assert pit["published_at"] == "2020-11-17T16:40:00Z"
    assert "яма глубиной около 20 см" in pit["text"]
    answer = answers[f"{qbase}/vopros-317.html#answer"]
    assert answer["parent"] == f"{qbase}/vopros-317.html"
    assert answer["author_is_official"] == 1
    assert answer["author_name"] == "Отдел дорожного хозяйства"
    assert answer["published_at"] == "2020-11-17T21:00:00Z"
    assert answer["text"].startswith("Яма на ул. Центральной у остановки «Школа» заделана")

    # Second run: nothing new. No item page fetched again, except the question still waiting
    # for its answer; page 2 not read (page 1 is all old).
    hits = item_hits(replay, "zarechny", ZARECHNY_ITEMS)
    qhits = item_hits(replay, "sosnovka", SOSNOVKA_ITEMS)
    assert set(hits.values()) == {1} and set(qhits.values()) == {1}
    page2 = replay.hits("/zarechny/news/page-2.html")
    second = glas("run", "--all")
    assert second.returncode == 0, second.stdout + second.stderr
    assert item_hits(replay, "zarechny", ZARECHNY_ITEMS) == hits
    assert replay.hits("/zarechny/news/page-2.html") == page2
    assert item_hits(replay, "sosnovka", SOSNOVKA_ITEMS) == {**qhits, 318: 2}
    assert replay.hits("/sosnovka/priemnaya/page-2.html") == 1
    assert last_run(db, "zarechny-news")["new"] == 0
    assert last_run(db, "zarechny-news")["warnings"] is None
    assert last_run(db, "sosnovka-priemnaya")["warnings"] is None  # 318 has no answer yet

    # A new item on page 1 and an answer to 318: only those pages are fetched.
    index = (SITES / "zarechny/news/index.html").read_text("utf-8")
    fresh = (
        '<div class="news-item" id="bx_3218110189_1047">'
        '<span class="news-date-time">19.11.2020 10:00</span>'
        '<a href="/zarechny/news/1047.html#comments"><b>Прорыв трубы на ул. Мира</b></a>'
        "</div>"
    )
    index = index.replace('<div class="news-list">', '<div class="news-list">' + fresh)
    replay.route("/zarechny/news/", index)
    replay.route(
        "/zarechny/news/1047.html",
        "<html><body><div class='news-detail-text'>Вода заливает подвал дома 9.</div>"
        "</body></html>",
    )
    answered = (SITES / "sosnovka/priemnaya/vopros-317.html").read_bytes()
    answered = answered.replace(b"vopros-317", b"vopros-318")
    replay.route(
        "/sosnovka/priemnaya/vopros-318.html", answered, content_type="text/html; charset=cp1251"
    )
    third = glas("run", "--all")
    assert third.returncode == 0, third.stdout + third.stderr
    assert item_hits(replay, "zarechny", ZARECHNY_ITEMS) == hits
    assert replay.hits("/zarechny/news/1047.html") == 1
    news = posts(db, "zarechny-news")
    assert news[f"{base}/1047.html"]["text"] == "Вода заливает подвал дома 9."
    assert last_run(db, "zarechny-news")["new"] == 1
    assert f"{qbase}/vopros-318.html#answer" in posts(db, "sosnovka-priemnaya")


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/html", id="no-charset-header"),
        pytest.param("text/html; charset=utf-8", id="wrong-charset-header"),
    ],
)
def test_windows_1251_site_without_a_true_charset_header(
    replay: ReplayServer,
    write_sources: Callable[..., Path],
    glas: Glas,
    db: Path,
    content_type: str,
) -> None:
    serve(replay, "sosnovka", content_type)
    write_sources(sources(sosnovka_source(replay.url)))
    result = glas("run", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    qa = posts(db, "sosnovka-priemnaya")
    qbase = f"{replay.url}/sosnovka/priemnaya"
    heating = qa[f"{qbase}/vopros-318.html"]
    assert heating["title"] == "Нет отопления в доме по ул. Лесной, 7"
    assert heating["text"].startswith("Третий день в квартирах нашего подъезда холодные батареи")
    assert heating["author_name"] == "Жительница ул. Лесной"
    assert qa[f"{qbase}/vopros-314.html#answer"]["author_name"] == "МУП «Сосновский водоканал»"
    assert len(qa) == 9
    assert not any("\ufffd" in (r["text"] + (r["title"] or "")) for r in qa.values())


def test_faults_are_one_line_errors_and_a_missing_item_page_a_warning(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas, db: Path
) -> None:
    serve(replay, "zarechny")
    replay.fault("/zarechny/news/1044.html", status=404)
    item_page = (SITES / "zarechny/news/1045.html").read_bytes()
    replay.route("/zarechny/news/1045.html", item_page[:1000])
    replay.route("/dead/news/", "x")
    replay.fault("/dead/news/", status=500)
    whole = (SITES / "zarechny/news/index.html").read_bytes()
    replay.route("/cut/news/", whole[: len(whole) // 2])
    replay.route("/empty/news/", b"")
    write_sources(
        sources(
            zarechny_source(replay.url, max_pages="1"),
            zarechny_source(replay.url)
            .replace("zarechny-news", "wrong-item")
            .replace(".news-list .news-item", ".news-list .news-row"),
            zarechny_source(replay.url)
            .replace("zarechny-news", "dead")
            .replace("/zarechny/news/", "/dead/news/"),
            zarechny_source(replay.url)
            .replace("zarechny-news", "cut")
            .replace("/zarechny/news/", "/cut/news/"),
            zarechny_source(replay.url)
            .replace("zarechny-news", "empty")
            .replace("/zarechny/news/", "/empty/news/"),
        )
    )
    result = glas("run", "--all")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    errors = {
        "wrong-item": f"selector `item` matched nothing on {replay.url}/zarechny/news/",
        "dead": f"HTTP 500 from {replay.url}/dead/news/",
        "cut": f"truncated HTML at {replay.url}/cut/news/: the page ends before </body></html> "
        f"({len(whole) // 2} bytes)",
        "empty": f"empty page at {replay.url}/empty/news/ (no content)",
    }
    for source_id, error in errors.items():
        run = last_run(db, source_id)
        assert (run["status"], run["error"]) == ("failed", error)
        assert f"glas: {source_id}: failed: {error}" in result.stderr.splitlines()

    run = last_run(db, "zarechny-news")
    assert run["status"] == "ok"
    assert run["new"] == 2
    assert sorted(json.loads(run["warnings"])) == [
        f"item skipped: HTTP 404 from {replay.url}/zarechny/news/1044.html",
        f"item skipped: truncated HTML at {replay.url}/zarechny/news/1045.html: the page ends "
        "before </body></html> (1000 bytes)",
    ]
    kept = posts(db, "zarechny-news")
    assert sorted(kept) == sorted(f"{replay.url}/zarechny/news/{n}.html" for n in (1046, 1043))
    # The skipped items are not remembered as stored: the next run fetches them again.
    replay.clear_faults()
    serve(replay, "zarechny")
    again = glas("run", "--source", "zarechny-news")
    assert again.returncode == 0, again.stderr
    assert replay.hits("/zarechny/news/1044.html") == 2
    assert replay.hits("/zarechny/news/1045.html") == 2
    assert replay.hits("/zarechny/news/1046.html") == 1
    assert len(posts(db, "zarechny-news")) == 4


def test_selector_that_matches_nothing_is_a_warning_naming_it(
    replay: ReplayServer, write_sources: Callable[..., Path], glas: Glas, db: Path
) -> None:
    serve(replay, "zarechny")
    write_sources(
        sources(
            zarechny_source(replay.url, max_pages="1", author=".news-author").replace(
                ".news-detail-text", ".detail-text"
            )
        )
    )
    result = glas("run", "--all")
    assert result.returncode == 0, result.stderr
    url = f"{replay.url}/zarechny/news/"
    assert json.loads(last_run(db, "zarechny-news")["warnings"]) == [
        f"selector `author` (.news-author) matched nothing in any of the 4 items on {url}",
        "selector `follow.text` (.detail-text) matched nothing on any of the 4 item pages "
        f"(e.g. {url}1046.html)",
    ]
    assert len(posts(db, "zarechny-news")) == 4


def test_bad_selectors_are_config_errors_with_their_lines(
    write_sources: Callable[..., Path], glas: Glas
) -> None:
    path = write_sources(
        sources(
            zarechny_source("http://replay.invalid", date_format="'%d.%m.%Q'")
            .replace(".news-list .news-item", "div..news-item")
            .replace(".news-detail-text", "'//div[@class='"),
        )
    )
    result = glas("check")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    text = path.read_text("utf-8").splitlines()
    line = {
        key: next(i for i, t in enumerate(text, 1) if t.strip().startswith(key))
        for key in ("item:", "text:", "date_format:")
    }
    assert result.stderr.splitlines() == [
        f"sources.yaml:{line['item:']}: zarechny-news: 'item': bad CSS selector "
        "'div..news-item': Expected ident, got <DELIM '.' at 4>",
        f"sources.yaml:{line['text:']}: zarechny-news: 'follow.text': bad XPath selector "
        "'//div[@class=': invalid expression",
        f"sources.yaml:{line['date_format:']}: zarechny-news: date_format "
        "'%d.%m.%Q' is not a strptime format: 'Q' is a bad directive in format '%d.%m.%Q'",
        "sources.yaml: 3 problems",
    ]
