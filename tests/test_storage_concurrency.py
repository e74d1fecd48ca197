"""Concurrent writers and a reader tailing ``seq``: every change is seen once, in order.

Two writers (separate connections, as two `glas run` processes would have) store overlapping
batches at the same time while a reader loops ``WHERE seq > last ORDER BY seq``. If ``seq``
order were not commit order, the reader could pass a number whose row was committed later
and never see that row; the test checks that the reader's view ends equal to the tables.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from crawler.model import Post
from storage import open_inbox
from storage.sql import SqlInbox

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
STREETS = ["Ленина", "Садовая", "Мира", "Гагарина", "Победы", "Школьная"]


def batch(writer: int, round_: int) -> list[Post]:
    """Posts new to this writer, plus edits of posts the other writer also stores."""
    posts = [
        Post(
            platform="vk",
            native_id=f"w{writer}-{round_}-{n}",
            text=f"Во дворе дома {n + 10 * round_} на улице {STREETS[n % 6]} не вывозят мусор",
            published_at=T0 + timedelta(minutes=round_ * 10 + n),
            author_id=f"u{writer}{n}",
        )
        for n in range(8)
    ]
    shared = Post(
        platform="vk",
        native_id=f"shared-{round_ % 3}",
        text=f"Общая жалоба на отопление, версия писателя {writer}, раунд {round_}",
        published_at=T0,
        metrics={"views": round_ * 10 + writer},
    )
    return [*posts, shared]


def test_concurrent_writers_and_a_tailing_reader_see_each_change_once(db_url: str) -> None:
    with open_inbox(db_url):
        pass  # schema created before the race starts
    rounds = 15
    failures: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def write(writer: int) -> None:
        try:
            with open_inbox(db_url) as box:
                for round_ in range(rounds):
                    box.store(f"source-{writer}", batch(writer, round_))
        except BaseException as exc:
            failures.append(exc)

    seen: dict[tuple[str, object], int] = {}  # (table, row key) -> last seq the reader saw
    order: list[int] = []

    def tail(box: SqlInbox, last: int) -> int:
        rows = box.query(
            "SELECT 'posts', id, seq FROM posts WHERE seq > ? "
            "UNION ALL SELECT 'clusters', cluster_id, seq FROM clusters WHERE seq > ? "
            "ORDER BY 3",
            (last, last),
        )
        for table, key, seq in rows:
            seen[(table, key)] = seq
            order.append(seq)
            last = seq
        return last

    writers = [threading.Thread(target=write, args=(w,)) for w in (1, 2)]
    with open_inbox(db_url) as reader:
        assert isinstance(reader, SqlInbox)
        last = 0
        for thread in writers:
            thread.start()
        while any(t.is_alive() for t in writers):
            last = tail(reader, last)
        for thread in writers:
            thread.join()
        last = tail(reader, last)
        assert failures == []
        final = {
            (table, key): seq
            for table, key, seq in reader.query(
                "SELECT 'posts', id, seq FROM posts "
                "UNION ALL SELECT 'clusters', cluster_id, seq FROM clusters"
            )
        }
        posts = reader.query("SELECT count(*), count(DISTINCT native_id) FROM posts")
    assert posts == [(2 * rounds * 8 + 3, 2 * rounds * 8 + 3)]  # idempotent: no duplicates
    assert seen == final, "the tailing reader missed a change"
    assert order == sorted(order) and len(order) == len(set(order)), "a seq was seen twice"
