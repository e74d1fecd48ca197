"""Entry ids of feeds: unique per feed unless they are web addresses, stable across runs.

The feeds are made up here in the shapes that broke on real material: numeric guids shared by
two municipal feeds, entries with no title, text or link, several entries linking to one page,
the same page announced by two feeds. The upgrade of inboxes written under the old rule is
tested on both backends with rows stored the old way.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from crawler.model import Post
from spiders.rss import Options, entry_id, id_scope, parse_feed
from storage import SchemaOutdated, open_inbox
from storage.sql import SqlInbox
from tests.replay import ReplayServer

Glas = Callable[..., subprocess.CompletedProcess[str]]
A = "https://uprava-a.example/rss"
B = "https://uprava-b.example/rss"


def rss(*items: str, title: str = "Новости управы") -> bytes:
    """An RSS 2.0 document with these ``<item>`` bodies."""
    entries = "".join(f"<item>{item}</item>" for item in items)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://uprava.example/</link>"
        f"<description>Выдуманная лента</description>{entries}</channel></rss>\n"
    ).encode()


def ids(body: bytes, url: str = A) -> list[str]:
    return [post.native_id for post in parse_feed(body, url, "application/rss+xml").posts]


# -- the rule ------------------------------------------------------------------------------------
def test_numeric_guids_of_two_feeds_are_two_posts() -> None:
    item = "<guid isPermaLink='false'>123</guid><title>{}</title><description>{}</description>"
    first = ids(rss(item.format("Отключение воды", "ул. Мира")), A)
    second = ids(rss(item.format("Ремонт дороги", "ул. Ленина")), B)
    assert first == [f"{A}#123"]
    assert second == [f"{B}#123"]


def test_a_guid_that_is_a_web_address_is_one_item_in_every_feed() -> None:
    item = "<guid>https://uprava.example/news/7/</guid><title>Субботник</title>"
    assert ids(rss(item), A) == ids(rss(item), B) == ["https://uprava.example/news/7/"]
    link_only = "<link>https://uprava.example/news/8/</link><title>Собрание</title>"
    assert ids(rss(link_only), A) == ["https://uprava.example/news/8/"]


def test_other_absolute_ids_are_scoped_too() -> None:
    """tag: and urn: ids are meant to be unique but are copied (templates, the RFC's example)."""
    atom = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>t</title><entry><id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>"
        b"<title>x</title></entry></feed>"
    )
    assert parse_feed(atom, A).posts[0].native_id == (
        f"{A}#urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"
    )


def test_feed_address_scopes_ids_whatever_its_scheme() -> None:
    item = "<guid isPermaLink='false'>5</guid><title>t</title>"
    http = "http://uprava-a.example/rss"
    assert id_scope(http) == A
    assert ids(rss(item), http) == ids(rss(item), A) == [f"{A}#5"]
    # The page read may be another (a redirect, page 2): the configured address scopes.
    feed = parse_feed(rss(item), "https://mirror.example/rss?page=2", feed_url=http)
    assert [p.native_id for p in feed.posts] == [f"{A}#5"]


def test_entries_without_guid_link_title_or_text_stay_apart() -> None:
    """The hash covers every field an entry has (dates, enclosures, author), not its place."""
    empty = [
        "<pubDate>Mon, 02 Mar 2026 10:00:00 +0300</pubDate>",
        "<pubDate>Mon, 02 Mar 2026 11:00:00 +0300</pubDate>",
        "<enclosure url='https://uprava.example/1.jpg' type='image/jpeg' length='1'/>",
        "<author>dispatcher@uprava.example</author>",
    ]
    found = ids(rss(*empty))
    assert len(set(found)) == 4
    assert all(i.startswith(f"{A}#sha1:") for i in found)
    # A new entry on top does not move the others' ids; neither does reversing the order.
    newer = "<pubDate>Tue, 03 Mar 2026 09:00:00 +0300</pubDate>"
    assert ids(rss(newer, *empty))[1:] == found
    assert ids(rss(*reversed(empty))) == found[::-1]
    # The same entry in another feed is another post.
    assert set(ids(rss(*empty), B)).isdisjoint(found)


def test_entries_equal_in_every_field_are_one_post() -> None:
    assert len(set(ids(rss("<title>Дубль</title>", "<title>Дубль</title>")))) == 1
    assert len(set(ids(rss("", "")))) == 1  # nothing at all to tell them apart


def test_entries_sharing_a_link_within_one_feed_stay_apart_and_stable() -> None:
    """A feed linking every entry to its news section: each entry keeps its own id."""
    section = "<link>https://uprava.example/news/</link>"
    items = [f"{section}<title>Объявление {n}</title>" for n in range(3)]
    found = ids(rss(*items))
    assert len(set(found)) == 3
    assert all(i.startswith("https://uprava.example/news/#sha1:") for i in found)
    assert ids(rss(f"{section}<title>Новое</title>", *items))[1:] == found
    same_twice = ids(rss(items[0], items[0]))
    assert same_twice == ["https://uprava.example/news/"] * 2  # a repeated entry is still one


def test_a_home_page_link_is_no_item_address() -> None:
    """Two feeds, each with one entry linking to the site's home page: two posts."""
    assert ids(rss("<link>https://uprava.example/</link><title>a</title>"), A) == [
        f"{A}#https://uprava.example/"
    ]
    assert ids(rss("<guid>http://uprava.example</guid><title>b</title>"), B) == [
        f"{B}#http://uprava.example"
    ]
    for item_address in ("https://uprava.example/?p=5", "https://uprava.example/#n5"):
        assert ids(rss(f"<link>{item_address}</link>")) == [item_address]


def test_entry_id_of_raw_fields() -> None:
    assert entry_id({"id": " 42 "}, A) == f"{A}#42"
    assert entry_id({"id": "HTTPS://Uprava.example/n/1"}, A) == "HTTPS://Uprava.example/n/1"
    assert entry_id({"link": "/news/1"}, A) == f"{A}#/news/1"  # relative: not an address
    assert entry_id({"id": "http:/broken"}, A) == f"{A}#http:/broken"
    assert entry_id({"title": "a"}, A) != entry_id({"title": "b"}, A)


# -- many feeds, two runs ------------------------------------------------------------------------
def many_feeds() -> dict[str, bytes]:
    """Twelve feeds in the shapes that collided: numeric guids in every feed, entries with
    nothing but a date, entries sharing a section link, one entry linking to the city's home
    page in each, one page announced by all of them."""
    feeds = {}
    for n in range(12):
        items = [
            f"<guid isPermaLink='false'>{k}</guid><title>Новость {k} управы {n}</title>"
            f"<description>Текст {k} управы {n}</description>"
            for k in range(1, 4)
        ]
        items += [f"<pubDate>Mon, 02 Mar 2026 1{k}:00:00 +0300</pubDate>" for k in range(2)]
        items += [
            f"<link>https://uprava{n}.example/news/</link><title>Объявление {k}</title>"
            for k in range(2)
        ]
        items.append(
            "<guid>https://city.example/news/1/</guid><title>Городская новость</title>"
            "<description>Одна на всех</description>"
        )
        items.append(f"<link>https://city.example/</link><title>Объявление управы {n}</title>")
        feeds[f"/u{n}/rss.xml"] = rss(*items)
    return feeds


def test_unchanged_second_run_of_many_feeds_updates_nothing(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, tmp_path: Path
) -> None:
    feeds = many_feeds()
    lines = []
    for n, (path, body) in enumerate(feeds.items()):
        replay.route(path, body, conditional=False)  # fetched and parsed again each time
        lines.append(f"  - id: u{n}\n    type: rss\n    url: {replay.url}{path}\n")
    write_sources(
        "defaults:\n  request_delay: 0s\n  retry_backoff: 0s\nsources:\n" + "".join(lines)
    )
    first = glas("run", "--all")
    assert first.returncode == 0, first.stderr
    # 12 feeds x (3 guids + 2 dated + 2 section links + 1 home-page link) + 1 shared page.
    assert "97 new, 0 updated" in first.stdout, first.stdout
    box = open_inbox(str(tmp_path / "inbox.db"))
    assert isinstance(box, SqlInbox)
    before = box.query("SELECT native_id, seq, updated_at FROM posts ORDER BY native_id")
    last_seq = box.last_seq()
    box.close()
    assert len(before) == 97

    second = glas("run", "--all")
    assert second.returncode == 0, second.stderr
    assert "0 new, 0 updated, 108 unchanged" in second.stdout, second.stdout
    with open_inbox(str(tmp_path / "inbox.db")) as box:
        assert isinstance(box, SqlInbox)
        assert box.query("SELECT native_id, seq, updated_at FROM posts ORDER BY native_id") == (
            before
        )
        assert box.last_seq() == last_seq


# -- upgrading an inbox written under the old rule ----------------------------------------------
OLD_SHA1 = "sha1:85fbb1141a48ee3ba6115b237e28990b2b0ca233"


def old_inbox(db_url: str, feed_a: str, feed_b: str) -> None:
    """An inbox at schema version 3, as the old rule left it after collecting two feeds that
    both have guid ``123``: one row (feed b's text over feed a's), an entry without guid or
    link under its bare hash, a post quoting ``123`` and a reply to it (feeds have neither:
    the references are checked all the same), a page both feeds announced, an entry
    linking to the home page, and an imported rss row whose source is in no sources.yaml."""
    box = open_inbox(db_url, check_schema=False)
    assert isinstance(box, SqlInbox)
    box.upgrade(up_to=3)
    # store() writes today's columns: the one migration 5 adds is there only while it writes
    box._execute("ALTER TABLE posts ADD COLUMN collected_hash TEXT")
    box.sync_sources(
        [
            Options(id="feed-a", type="rss", url=feed_a),
            Options(id="feed-b", type="rss", url=feed_b),
        ]
    )

    def post(native_id: str, text: str, **kw: object) -> Post:
        return Post(platform="rss", native_id=native_id, text=text, **kw)  # type: ignore[arg-type]

    box.store(
        "feed-a",
        [
            post("123", "Отключение горячей воды на улице Мира до пятницы"),
            post(OLD_SHA1, "Найден ключ от домофона у третьего подъезда"),
            post("https://city.example/news/1/", "Городская новость для всех управ района"),
            post("124", "Репост новости о воде", repost_of="123"),
            post("125", "Ответ на новость о воде", kind="comment", parent="123"),
            post("https://uprava-a.example/", "Объявление со ссылкой на главную страницу"),
        ],
    )
    box.store("feed-b", [post("123", "Ремонт дороги на улице Ленина начнется в мае")])
    box.store("import-2025", [post("777", "Импортированная запись из старой выгрузки")])
    box._execute("ALTER TABLE posts DROP COLUMN collected_hash")
    box.close()


@pytest.mark.both_backends
def test_db_upgrade_scopes_old_ids_keeping_every_row(backend: str, db_url: str, glas: Glas) -> None:
    feed_a, feed_b = "http://uprava-a.example/rss", "https://uprava-b.example/rss"
    old_inbox(db_url, feed_a, feed_b)
    with pytest.raises(SchemaOutdated, match="glas db upgrade"):
        open_inbox(db_url)
    box = open_inbox(db_url, check_schema=False)
    assert isinstance(box, SqlInbox)
    before = {row[0]: row[1:] for row in box.query("SELECT id, source_id, text, seq FROM posts")}
    before_ids = dict(box.query("SELECT id, native_id FROM posts"))
    last_seq = box.last_seq()
    cases = box.query("SELECT count(*) FROM inbox")
    box.close()

    result = glas("--db", db_url, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert "4: rss: entry ids" in result.stdout

    with open_inbox(db_url) as box:
        assert isinstance(box, SqlInbox)
        rows = {row[0]: row[1:] for row in box.query("SELECT id, source_id, text, seq FROM posts")}
        assert {k: v[:2] for k, v in rows.items()} == {k: v[:2] for k, v in before.items()}
        after_ids = dict(box.query("SELECT id, native_id FROM posts"))
        renamed = {before_ids[k]: v for k, v in after_ids.items() if v != before_ids[k]}
        assert renamed == {
            "123": "https://uprava-a.example/rss#123",  # http:// written as https://
            "124": "https://uprava-a.example/rss#124",
            "125": "https://uprava-a.example/rss#125",
            OLD_SHA1: f"https://uprava-a.example/rss#{OLD_SHA1}",
            "https://uprava-a.example/": "https://uprava-a.example/rss#https://uprava-a.example/",
        }
        # Renamed rows are changes downstream must see: new seqs after the old last one.
        new_seqs = sorted(rows[k][2] for k, v in after_ids.items() if v != before_ids[k])
        assert new_seqs[0] > last_seq and len(set(new_seqs)) == 5
        assert box.last_seq() >= new_seqs[-1]
        assert box.query(
            "SELECT repost_of, parent FROM posts WHERE native_id LIKE '%#124' "
            "OR native_id LIKE '%#125' ORDER BY native_id"
        ) == [
            ("https://uprava-a.example/rss#123", None),
            (None, "https://uprava-a.example/rss#123"),
        ]
        canonical = {r[0] for r in box.query("SELECT canonical_native_id FROM clusters")}
        assert "123" not in canonical and "https://uprava-a.example/rss#123" in canonical
        assert box.query("SELECT count(*) FROM inbox") == cases  # the view still joins
        assert box.upgrade() == []


def test_db_upgrade_then_run_finds_the_renamed_posts(
    replay: ReplayServer, write_sources: Callable[[str], Path], glas: Glas, tmp_path: Path
) -> None:
    """After the upgrade the feeds' guid entries are found under their new ids; feed b's
    entry, lost to the collision before, comes back as a new post."""
    item = "<guid isPermaLink='false'>123</guid><description>{}</description>"
    replay.route("/a/rss.xml", rss(item.format("Отключение горячей воды на улице Мира до пятницы")))
    replay.route("/b/rss.xml", rss(item.format("Ремонт дороги на улице Ленина начнется в мае")))
    db = str(tmp_path / "inbox.db")
    old_inbox(db, f"{replay.url}/a/rss.xml", f"{replay.url}/b/rss.xml")
    assert glas("db", "upgrade").returncode == 0
    write_sources(f"""
        defaults:
          request_delay: 0s
        sources:
          - id: feed-a
            type: rss
            url: {replay.url}/a/rss.xml
          - id: feed-b
            type: rss
            url: {replay.url}/b/rss.xml
    """)
    run = glas("run", "--all")
    assert run.returncode == 0, run.stderr
    assert "1 new" in run.stdout, run.stdout
    with open_inbox(db) as box:
        assert isinstance(box, SqlInbox)
        scope = id_scope(replay.url)
        assert box.query(
            "SELECT native_id, source_id FROM posts WHERE native_id LIKE ? ORDER BY native_id",
            (f"{scope}/_/rss.xml#123",),
        ) == [(f"{scope}/a/rss.xml#123", "feed-a"), (f"{scope}/b/rss.xml#123", "feed-b")]
