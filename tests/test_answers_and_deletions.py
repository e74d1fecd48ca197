"""Official answers mark what they answer; deleted items are kept and marked, never dropped.

Texts are real resident comments and official replies from ../shared/data/vk/ (read in place).
"""

from __future__ import annotations

import csv
import sqlite3
from datetime import datetime
from typing import Any

import pytest

from crawler.model import Post
from storage import SchemaOutdated, open_inbox
from storage.migrations import LATEST, MIGRATIONS
from storage.sql import SqlInbox
from tests.conftest import shared

pytestmark = pytest.mark.both_backends


def _when(text: str) -> datetime:
    return datetime.strptime(text, "%Y.%m.%d %H:%M").astimezone()


def real_thread() -> tuple[dict[str, str], dict[str, str]]:
    """A resident's comment and the official reply that followed it under the same post."""
    with shared("vk/vk_comments_spb_central.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_post: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_post.setdefault(row["url"].split("?")[0], []).append(row)
    for thread in by_post.values():
        thread.sort(key=lambda r: _when(r["published"]))
        for i, row in enumerate(thread):
            if row["author_is_official"] == "True" and i > 0:
                earlier = [r for r in thread[:i] if r["author_is_official"] == "False"]
                if earlier and _when(row["published"]) > _when(earlier[-1]["published"]):
                    return earlier[-1], row
    raise AssertionError("the real comments have no answered thread")


def comment(row: dict[str, str], *, parent: str, native_id: str | None = None) -> Post:
    official = row["author_is_official"] == "True"
    return Post(
        platform="vk",
        native_id=native_id or f"-143265175_c{row['comment_id']}",
        source_id="central",
        kind="comment",
        parent=parent,
        author_id=row["author"],
        author_name=row["author_name"] or None,
        author_is_official=official,
        text=row["text"],
        published_at=_when(row["published"]),
    )


@pytest.fixture
def thread() -> tuple[Post, Post]:
    resident, official = real_thread()
    question = comment(resident, parent="-143265175_1")
    answer = comment(official, parent=question.native_id)
    return question, answer


def post_row(box: SqlInbox, native_id: str) -> dict[str, Any]:
    return box.query_dicts("SELECT * FROM posts WHERE native_id = ?", (native_id,))[0]


def test_official_reply_in_a_later_run_answers_the_comment(
    inbox: SqlInbox, thread: tuple[Post, Post]
) -> None:
    question, answer = thread
    inbox.store("central", [question])
    before = post_row(inbox, question.native_id)
    assert before["answered_at"] is None
    last = inbox.last_seq()

    inbox.store("central", [answer])

    row = post_row(inbox, question.native_id)
    assert answer.published_at and question.published_at
    expected = int((answer.published_at - question.published_at).total_seconds())
    assert row["answered_at"] == post_row(inbox, answer.native_id)["published_at"]
    assert row["answered_by"] == answer.author_name
    assert row["response_seconds"] == expected > 0
    assert row["seq"] > last, "a routing tool reading seq > last must see the answer"
    [cluster] = inbox.query(
        "SELECT answered_at FROM clusters WHERE cluster_id = ?", (row["cluster_id"],)
    )
    assert cluster[0] == row["answered_at"]
    # The reply itself is not "answered", and storing both again changes nothing.
    assert post_row(inbox, answer.native_id)["answered_at"] is None
    last = inbox.last_seq()
    again = inbox.store("central", [question, answer])
    assert again.unchanged == 2 and inbox.last_seq() == last
    assert post_row(inbox, question.native_id)["answered_at"] == row["answered_at"]


def test_reply_collected_before_the_comment_it_answers(
    inbox: SqlInbox, thread: tuple[Post, Post]
) -> None:
    question, answer = thread
    inbox.store("central", [answer])
    inbox.store("central", [question])
    row = post_row(inbox, question.native_id)
    assert row["answered_at"] is not None and row["response_seconds"] > 0


def test_earliest_official_reply_wins_and_residents_do_not_answer(
    inbox: SqlInbox, thread: tuple[Post, Post]
) -> None:
    question, answer = thread
    assert answer.published_at is not None
    resident_reply = Post(
        platform="vk",
        native_id="-143265175_c900001",
        kind="comment",
        parent=question.native_id,
        author_id="a000000000001",
        text="Присоединяюсь, у нас то же самое",
        published_at=question.published_at,
    )
    inbox.store("central", [question, resident_reply])
    assert post_row(inbox, question.native_id)["answered_at"] is None

    later = Post(
        platform="vk",
        native_id="-143265175_c900002",
        kind="comment",
        parent=question.native_id,
        author_is_official=True,
        author_name="Администрация района",
        text="Информация передана в управляющую компанию.",
        published_at=answer.published_at.replace(year=answer.published_at.year + 1),
    )
    inbox.store("central", [later])
    assert post_row(inbox, question.native_id)["answered_by"] == "Администрация района"
    inbox.store("central", [answer])  # an earlier official reply found later
    row = post_row(inbox, question.native_id)
    assert row["answered_by"] == answer.author_name
    assert row["answered_at"] == post_row(inbox, answer.native_id)["published_at"]


def test_official_comment_under_an_official_post_is_not_an_answer(inbox: SqlInbox) -> None:
    news = Post(
        platform="vk",
        native_id="-143265175_77",
        author_is_official=True,
        author_name="Центральный район Санкт-Петербурга",
        text="Отключение горячей воды с 1 по 14 июня по графику ГУП «ТЭК»",
        published_at=datetime(2021, 5, 30, 9, 0).astimezone(),
    )
    addendum = Post(
        platform="vk",
        native_id="-143265175_c78",
        kind="comment",
        parent=news.native_id,
        author_is_official=True,
        text="График по адресам опубликован на сайте района.",
        published_at=datetime(2021, 5, 30, 9, 5).astimezone(),
    )
    inbox.store("central", [news, addendum])
    assert post_row(inbox, news.native_id)["answered_at"] is None


def test_deleted_comment_keeps_its_text_and_is_marked(
    inbox: SqlInbox, thread: tuple[Post, Post]
) -> None:
    question, _ = thread
    inbox.store("central", [question])
    last = inbox.last_seq()
    gone = Post(
        platform="vk",
        native_id=question.native_id,
        kind="comment",
        parent=question.parent,
        text="",
        deleted=True,
    )
    result = inbox.store("central", [gone])
    row = post_row(inbox, question.native_id)
    assert result.updated == 1
    assert row["text"] == question.text, "what was collected before is kept"
    assert row["deleted_at"] is not None and row["seq"] > last
    assert inbox.store("central", [gone]).unchanged == 1  # seen deleted again: no change

    inbox.store("central", [question])  # restored by the platform (or a moderator's undo)
    assert post_row(inbox, question.native_id)["deleted_at"] is None

    never_seen = Post(platform="vk", native_id="-143265175_c5", kind="comment", deleted=True)
    assert inbox.store("central", [never_seen]).new == 1
    assert post_row(inbox, "-143265175_c5")["deleted_at"] is not None


def test_version_1_inbox_is_refused_then_upgraded_keeping_posts(backend: str, db_url: str) -> None:
    make_version_1(backend, db_url)
    with pytest.raises(SchemaOutdated, match="version 1, this Glas needs"):
        open_inbox(db_url)
    box = open_inbox(db_url, check_schema=False)
    assert box.upgrade()[-1].startswith(f"{LATEST}: ")
    box.close()
    with open_inbox(db_url) as box:
        assert box.schema_version() == LATEST
        assert isinstance(box, SqlInbox)
        assert box.query("SELECT text, deleted_at FROM posts") == [("яма на дороге", None)]


def make_version_1(backend: str, db_url: str) -> None:
    """An inbox as the first Glas release left it, with one post."""
    create = (
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TEXT NOT NULL)"
    )
    insert = [
        "INSERT INTO schema_migrations VALUES (1, 'initial', '2026-11-01T00:00:00Z')",
        "INSERT INTO posts (platform, native_id, source_id, text, content_hash, first_seen_at, "
        "updated_at, seq) VALUES ('vk', '1_1', 'src', 'яма на дороге', 'x', "
        "'2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z', 1)",
    ]
    if backend == "sqlite":
        conn = sqlite3.connect(db_url)
        conn.execute(create)
        conn.executescript(MIGRATIONS[0].sqlite)
        for statement in insert:
            conn.execute(statement)
        conn.commit()
        conn.close()
        return
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as pg:
        pg.execute(create)
        for statement in MIGRATIONS[0].postgres.split(";"):
            if statement.strip():
                pg.execute(statement)
        for statement in insert:
            pg.execute(statement)
