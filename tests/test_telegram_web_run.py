"""`glas run` end to end for `type: telegram_web`: channel pages on a loopback replay server.

The made-up pages of tests/fixtures/telegram_web/ serve the first harvest; the paging tests
build pages in the same markup (the fixture's page head, message and footer) with numbered
posts, so which ``?before=`` pages a run asked for shows where it stopped.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.replay import ReplayServer

pytestmark = pytest.mark.slow

Glas = Callable[..., subprocess.CompletedProcess[str]]
CASES = FIXTURES / "telegram_web"
CITY = "verhneozersk_live"
TITLE = "Верхнеозёрск: жалобы и новости"
PAGE = f"/s/{CITY}"

# The page around the posts, and one post, exactly as the fixture page has them.
_FIXTURE = (CASES / "page_before_130.html").read_text(encoding="utf-8")
_START = _FIXTURE.index('<section class="tgme_channel_history')
_END = _FIXTURE.index("</section>", _START) + len("</section>")
HEAD, FOOT = _FIXTURE[:_START], _FIXTURE[_END:]
_ONE = _FIXTURE.index('<div class="tgme_widget_message_wrap', _FIXTURE.index(f"{CITY}/102") - 400)
MESSAGE = _FIXTURE[_ONE : _FIXTURE.index("\n", _ONE) + 1]
ORIGINAL_TEXT = "Здравствуйте! Это канал о жизни Верхнеозёрска. Присылайте жалобы и фото в бот."
NEWEST = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def text_of(n: int) -> str:
    return f"Жалоба № {n}: во дворе дома {n} по улице Садовой не вывозят мусор."


def message(n: int, *, text: str | None = None, edited: bool = False, views: str = "1.2K") -> str:
    when = (NEWEST - timedelta(hours=200 - n)).isoformat()
    html = MESSAGE.replace(f"{CITY}/102", f"{CITY}/{n}").replace(ORIGINAL_TEXT, text or text_of(n))
    html = html.replace("2026-02-20T07:05:00+00:00", when).replace(">3.9K<", f">{views}<")
    if edited:
        html = html.replace(
            '<span class="tgme_widget_message_meta">',
            '<span class="tgme_widget_message_meta">edited&nbsp;',
        )
    return html


def channel_page(ids: Iterable[int], before: int | None, **changes: dict[str, Any]) -> str:
    """A page of posts ``ids`` (oldest first) whose "older" link says ``before``."""
    more = (
        f'<a href="/s/{CITY}?before={before}" class="tme_messages_more js-messages_more" '
        f'data-before="{before}"></a>\n'
        if before
        else ""
    )
    posts = "".join(message(n, **changes.get(str(n), {})) for n in ids)
    history = f'<section class="tgme_channel_history js-message_history">\n{more}{posts}</section>'
    return f"{HEAD}{history}{FOOT}"


def serve(
    replay: ReplayServer, pages: dict[int | None, tuple[range, int | None]], **changes: Any
) -> None:
    """Route ``before`` (None: the newest page) → (ids, the page's own before)."""
    for before, (ids, older) in pages.items():
        path = PAGE if before is None else f"{PAGE}?before={before}"
        replay.route(path, channel_page(ids, older, **changes))


def query(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def cursor(db: Path, source_id: str = "city") -> dict[str, Any]:
    row = query(db, "SELECT cursor FROM source_state WHERE source_id = ?", source_id)[0]
    return json.loads(row["cursor"]) if row["cursor"] else {}


def stored_ids(db: Path) -> list[int]:
    rows = query(db, "SELECT native_id FROM posts WHERE source_id = 'city'")
    return sorted(int(r["native_id"].split("/")[1]) for r in rows)


def pages_asked(replay: ReplayServer) -> list[str]:
    return [r.path for r in replay.requests if r.path.startswith("/s/")]


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert all(line.startswith("glas") for line in result.stderr.splitlines() if line.strip())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "inbox.db"


@pytest.fixture
def city(write_sources: Callable[[str], Path], replay: ReplayServer) -> Callable[..., Path]:
    def write(max_pages: int, officials: str = "[]") -> Path:
        return write_sources(f"""
            defaults:
              request_delay: 0s
              retry_backoff: 0s
              retries: 2
            official_accounts:
              telegram: {officials}
            sources:
              - id: city
                type: telegram_web
                channel: "https://t.me/s/{CITY}"
                base_url: {replay.url}
                max_pages: {max_pages}
                municipality: Верхнеозёрск
        """)

    return write


# -- first harvest from the fixture pages --------------------------------------------------------
def test_first_run_reads_max_pages_then_only_the_newest_page(
    replay: ReplayServer, city: Callable[..., Path], glas: Glas, db: Path
) -> None:
    for path, name in [
        (PAGE, "page_newest"),
        (f"{PAGE}?before=141", "page_before_141"),
        (f"{PAGE}?before=130", "page_before_130"),
    ]:
        replay.route(path, (CASES / f"{name}.html").read_bytes())
    city(2, officials='["@Verhneozersk_Live"]')
    began = datetime.now(UTC).replace(microsecond=0)
    first = glas("run", "--all")
    ended = datetime.now(UTC)
    assert first.returncode == 0, first.stderr
    assert_clean(first)
    assert pages_asked(replay) == [PAGE, f"{PAGE}?before=141"]
    assert "15 new" in first.stdout
    rows = {r["native_id"]: r for r in query(db, "SELECT * FROM posts")}
    assert sorted(rows) == sorted(
        f"{CITY}/{n}"
        for n in (130, 132, 134, 136, 138, 140, 141, 143, 146, 147, 148, 149, 150, 151, 152)
    )
    post = rows[f"{CITY}/141"]
    assert (post["platform"], post["kind"], post["source_id"]) == ("telegram", "post", "city")
    assert post["text"] == (
        "Доброе утро, Верхнеозёрск!\nСегодня в городе −12°, на дорогах гололёд. Будьте осторожны."
    )
    assert post["url"] == f"https://t.me/{CITY}/141"
    assert post["published_at"] == "2026-03-01T06:05:00Z"
    assert post["municipality"] == "Верхнеозёрск"
    assert post["edited_at"] is None
    assert json.loads(rows[f"{CITY}/147"]["metrics"]) == {"views": 1_100_000}
    assert rows[f"{CITY}/146"]["repost_of"] == "vozersk_admin/2077"
    assert rows[f"{CITY}/148"]["author_name"] == "Дежурный редактор"
    assert json.loads(rows[f"{CITY}/143"]["raw"])["album"] is True
    assert json.loads(rows[f"{CITY}/152"]["geo"]) == {"lat": 56.123456, "lon": 40.654321}
    assert {r["author_is_official"] for r in rows.values()} == {1}
    # Edited posts: edited_at is when Glas first saw them edited (the page gives no time).
    for n in (130, 143, 148):
        seen = datetime.fromisoformat(rows[f"{CITY}/{n}"]["edited_at"].replace("Z", "+00:00"))
        assert began <= seen <= ended
    title = query(db, "SELECT title FROM sources WHERE source_id = 'city'")[0]["title"]
    assert title == TITLE
    state = cursor(db)
    assert (state["channel"], state["last_id"], "resume" in state) == (CITY, 152, False)
    assert sorted(state["edited"]) == ["130", "143", "148"]

    second = glas("run", "--all")
    assert second.returncode == 0, second.stderr
    assert pages_asked(replay)[2:] == [PAGE]  # the newest page reaches the cursor: no paging
    assert "0 new, 0 updated, 9 unchanged" in second.stdout  # edited_at did not move
    again = {r["native_id"]: r["edited_at"] for r in query(db, "SELECT * FROM posts")}
    assert again == {k: r["edited_at"] for k, r in rows.items()}


# -- later runs: new posts down to the cursor, gaps, failures, edits -------------------------
def test_too_few_pages_leave_a_gap_that_the_next_run_closes(
    replay: ReplayServer, city: Callable[..., Path], glas: Glas, db: Path
) -> None:
    serve(replay, {None: (range(41, 61), 41)})
    city(1)
    assert glas("run", "--all").returncode == 0
    assert cursor(db)["last_id"] == 60

    serve(
        replay,
        {
            None: (range(101, 121), 101),
            101: (range(81, 101), 81),
            81: (range(61, 81), 61),
            61: (range(41, 61), 41),
        },
    )
    city(2)
    replay.clear_requests()
    second = glas("run", "--all")
    assert second.returncode == 0, second.stderr
    assert pages_asked(replay) == [PAGE, f"{PAGE}?before=101"]
    assert "did not reach the posts collected before" in second.stdout + second.stderr
    assert stored_ids(db) == [*range(41, 61), *range(81, 121)]
    state = cursor(db)
    assert (state["last_id"], state["resume"]) == (60, {"before": 81, "top": 120})

    # Posts keep coming faster than one page a run: a second gap cannot be recorded, so the
    # older one is kept and the posts above it are read again later (harmless).
    serve(
        replay,
        {None: (range(141, 161), 141), 141: (range(121, 141), 121), 121: (range(101, 121), 101)},
    )
    city(1)
    replay.clear_requests()
    third = glas("run", "--all")
    assert third.returncode == 0, third.stderr
    assert pages_asked(replay) == [PAGE]
    assert "did not reach the posts collected before" in third.stdout + third.stderr
    assert cursor(db)["resume"] == {"before": 81, "top": 120}

    city(6)
    replay.clear_requests()
    fourth = glas("run", "--all")
    assert fourth.returncode == 0, fourth.stderr
    # Down to what the last runs stored (the page of 101..120), then the gap, to the cursor.
    assert pages_asked(replay) == [
        PAGE,
        f"{PAGE}?before=141",
        f"{PAGE}?before=121",
        f"{PAGE}?before=81",
        f"{PAGE}?before=61",
    ]
    assert "40 new" in fourth.stdout  # 121..140 and 61..80
    assert stored_ids(db) == list(range(41, 161))
    state = cursor(db)
    assert (state["last_id"], "resume" in state) == (160, False)


def test_server_error_midway_keeps_earlier_pages_and_the_next_run_heals(
    replay: ReplayServer, city: Callable[..., Path], glas: Glas, db: Path
) -> None:
    serve(replay, {None: (range(41, 61), 41)})
    city(1)
    assert glas("run", "--all").returncode == 0

    edited = {"55": {"text": "Жалоба № 55: мусор вывезли, спасибо!", "edited": True}}
    serve(
        replay,
        {
            None: (range(81, 101), 81),
            81: (range(61, 81), 61),
            61: (range(41, 61), 41),
            41: (range(21, 41), 21),
        },
        **edited,
    )
    before_edit = query(db, "SELECT * FROM posts WHERE native_id = ?", f"{CITY}/55")[0]
    assert before_edit["edited_at"] is None
    replay.fault(f"{PAGE}?before=81", status=500)
    city(5)
    replay.clear_requests()
    failed = glas("run", "--all")
    assert failed.returncode == 1
    assert_clean(failed)
    error = f"HTTP 500 from {replay.url}{PAGE}?before=81"
    assert failed.stderr.splitlines() == [f"glas: city: failed: {error}"]
    assert replay.hits(f"{PAGE}?before=81") == 3  # one try and two retries
    assert replay.hits(f"{PAGE}?before=61") == 0
    assert stored_ids(db) == [*range(41, 61), *range(81, 101)]  # page 1 kept
    state = cursor(db)
    assert (state["last_id"], state["resume"]) == (60, {"before": 81, "top": 100})
    run = query(db, "SELECT * FROM runs WHERE source_id = 'city' ORDER BY run_id")[-1]
    assert (run["status"], run["new"], run["error"]) == ("failed", 20, error)

    replay.clear_faults()
    replay.clear_requests()
    began = datetime.now(UTC).replace(microsecond=0)
    healed = glas("run", "--all")
    assert healed.returncode == 0, healed.stderr
    assert_clean(healed)
    # Page 1 reaches what the failed run stored; then the gap down to the cursor (41 ≤ 60).
    assert pages_asked(replay) == [PAGE, f"{PAGE}?before=81", f"{PAGE}?before=61"]
    assert "20 new, 1 updated, 39 unchanged" in healed.stdout
    assert stored_ids(db) == list(range(41, 101))
    assert cursor(db)["last_id"] == 100
    after_edit = query(db, "SELECT * FROM posts WHERE native_id = ?", f"{CITY}/55")[0]
    assert after_edit["text"] == "Жалоба № 55: мусор вывезли, спасибо!"
    assert after_edit["seq"] > before_edit["seq"]
    assert after_edit["edited_at"] >= began.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert after_edit["author_is_official"] == 0  # the channel is not in official_accounts


# -- sources that fail, and one that is merely empty ---------------------------------------------
def test_missing_closed_cut_and_empty_channels(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, db: Path
) -> None:
    url = replay.url
    replay.route("/s/nosuch_channel", "not found", status=404, content_type="text/plain")
    replay.route(
        "/s/vozersk_zakryty", "", status=302, headers={"Location": f"{url}/vozersk_zakryty"}
    )
    replay.route("/vozersk_zakryty", (CASES / "no_preview.html").read_bytes())
    replay.route("/s/vozersk_contact", (CASES / "no_preview.html").read_bytes())
    page = (CASES / "page_newest.html").read_bytes().replace(CITY.encode(), b"vozersk_cut")
    replay.route("/s/vozersk_cut", page[: page.index(b'data-post="vozersk_cut/148"')])
    replay.route("/s/ozersk_dvor", (CASES / "empty_channel.html").read_bytes())
    # A server that ignores ?before= (answers every query with the newest page).
    replay.route(
        "/s/vozersk_loop",
        (CASES / "page_newest.html").read_bytes().replace(CITY.encode(), b"vozersk_loop"),
    )
    lines = ["defaults:", "  request_delay: 0s", "  retry_backoff: 0s", "sources:"]
    for source_id, channel in [
        ("missing", "nosuch_channel"),
        ("closed", "vozersk_zakryty"),
        ("contact", "vozersk_contact"),
        ("cut", "vozersk_cut"),
        ("empty", "ozersk_dvor"),
        ("loop", "vozersk_loop"),
    ]:
        lines += [f"  - id: {source_id}", "    type: telegram_web"]
        lines += [f'    channel: "@{channel}"', f"    base_url: {url}"]
    write_sources("\n".join(lines) + "\n")
    result = glas("run", "--all")
    assert result.returncode == 1
    assert_clean(result)
    expected = {
        "missing": (f"channel @nosuch_channel not found (HTTP 404 from {url}/s/nosuch_channel)", 1),
        "closed": (
            "channel @vozersk_zakryty does not exist, is private or has no web preview "
            f"(HTTP 302 to {url}/vozersk_zakryty)",
            1,
        ),
        "contact": (
            "channel @vozersk_contact does not exist, is private or has no web preview "
            f"(no message history at {url}/s/vozersk_contact)",
            1,
        ),
        "cut": (
            f"the page {url}/s/vozersk_cut was cut short (no closing </html>); "
            "nothing of it was stored",
            0,
        ),
    }
    states = {r["source_id"]: r for r in query(db, "SELECT * FROM source_state")}
    for source_id, (error, gone) in expected.items():
        assert (states[source_id]["last_error"], states[source_id]["gone"]) == (error, gone)
        assert f"glas: {source_id}: failed: {error}" in result.stderr.splitlines()
    assert replay.hits("/vozersk_zakryty") == 0  # the redirect is not followed off /s/
    assert replay.hits("/s/nosuch_channel") == 1  # a 404 is not retried
    counts = dict(query(db, "SELECT source_id, count(*) FROM posts GROUP BY source_id"))
    assert counts == {"loop": 9}
    assert states["empty"]["last_status"] == "ok"
    assert (states["loop"]["last_status"], cursor(db, "loop")["last_id"]) == ("ok", 152)
    assert pages_asked(replay).count("/s/vozersk_loop?before=141") == 1
    assert "answered ?before=141 with the same posts: paging stopped" in result.stderr
    titles = {r["source_id"]: r["title"] for r in query(db, "SELECT * FROM sources")}
    assert titles["empty"] == "Двор на Озёрной"
    assert titles["cut"] is None
