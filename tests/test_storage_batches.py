"""Storage writes a batch as a batch: what one ``store`` call holds together stays right.

A post and its official answer, a post and its copy, the same post twice, a post moving
between cases, cases merged by a later post of the same batch; the write path's lookups all
use an index (query plans checked on both backends); the pipeline leaves out posts collected
again unchanged and the near-duplicate index learns the cases of stored posts without
reading them back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crawler.model import Post, SourceConfig
from crawler.pipeline import Ingest, near_duplicates
from dedupe.exact import text_key
from storage.cases import MEMBER_SELECT, SUMMARY_COLUMNS, Member, summary_of
from storage.postgres import PostgresInbox
from storage.sql import SqlInbox

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
POTHOLE = "Огромная яма на дороге у дома 12 по улице Гагарина, машины бьют колёса каждый день"
TRASH = "Во дворе дома 5 по улице Ленина третью неделю не вывозят мусор, контейнеры полные"
LIGHTS = "На остановке Школьная третий вечер не горят фонари, ходить страшно детям"


def post(native_id: str, text: str, *, minutes: int = 0, **fields: Any) -> Post:
    p = Post(
        platform="vk",
        native_id=native_id,
        source_id="src",
        text=text,
        published_at=T0 + timedelta(minutes=minutes),
        **fields,
    )
    p.dedupe_key = text_key(text)
    return p


def cases(box: SqlInbox) -> dict[str, int]:
    return dict(box.query("SELECT native_id, cluster_id FROM posts"))


def consistent(box: SqlInbox) -> None:
    """Every case's size is its posts; one canonical post per non-empty case; seq unique."""
    for cluster_id, size, merged in box.query("SELECT cluster_id, size, merged_into FROM clusters"):
        members = box.query("SELECT is_canonical FROM posts WHERE cluster_id = ?", (cluster_id,))
        assert size == len(members), cluster_id
        assert sum(m[0] for m in members) == (1 if members else 0)
        assert merged is None or not members
    seqs = [r[0] for r in box.query("SELECT seq FROM posts UNION ALL SELECT seq FROM clusters")]
    assert len(seqs) == len(set(seqs)) and max(seqs) <= box.last_seq()


def test_a_post_and_its_official_answer_in_one_batch(inbox: SqlInbox) -> None:
    answer = post(
        "1_9", "Здравствуйте! Бригада выехала, яму заделают до пятницы.", minutes=95,
        kind="comment", parent="1", author_id="-77", author_is_official=True,
    )  # fmt: skip
    inbox.store("src", [answer, post("1", POTHOLE)])  # the answer first: order must not matter
    ((at, by, seconds),) = inbox.query(
        "SELECT answered_at, answered_by, response_seconds FROM posts WHERE native_id = '1'"
    )
    assert at == "2026-11-20T10:35:00Z" and by == "-77" and seconds == 95 * 60
    assert inbox.query("SELECT answered_at FROM posts WHERE native_id = '1_9'") == [(None,)]
    consistent(inbox)


def test_a_post_and_its_near_duplicate_in_one_batch_are_one_case(inbox: SqlInbox) -> None:
    source = SourceConfig(id="src", type="import")
    ingest = Ingest(inbox, source, batch_size=10)
    ingest.add(post("1", POTHOLE))
    ingest.add(post("2", POTHOLE.replace("каждый день", "каждый божий день!"), minutes=3))
    ingest.add(post("3", TRASH, minutes=5))
    ingest.close()
    ids = cases(inbox)
    assert ids["1"] == ids["2"] != ids["3"]
    ((size, canonical),) = inbox.query(
        "SELECT size, canonical_native_id FROM clusters WHERE cluster_id = ?", (ids["1"],)
    )
    assert (size, canonical) == (2, "1")
    consistent(inbox)


def test_the_same_post_twice_in_one_batch_is_stored_once_as_its_last_copy(
    inbox: SqlInbox,
) -> None:
    result = inbox.store("src", [post("1", POTHOLE), post("2", TRASH), post("1", LIGHTS)])
    assert (result.new, result.unchanged) == (2, 1)
    assert inbox.query("SELECT count(*), max(text) FROM posts WHERE native_id = '1'") == [
        (1, LIGHTS)
    ]
    assert inbox.last_seq() == 4  # two posts, two cases: one seq each
    consistent(inbox)


def test_a_post_moves_between_cases_within_a_batch(inbox: SqlInbox) -> None:
    inbox.store("src", [post("1", POTHOLE), post("2", POTHOLE, minutes=1), post("3", TRASH)])
    before = cases(inbox)
    assert before["1"] == before["2"] != before["3"]
    result = inbox.store("src", [post("2", TRASH, minutes=1), post("4", LIGHTS, minutes=9)])
    assert (result.new, result.updated) == (1, 1)
    after = cases(inbox)
    assert after["2"] == after["3"] == before["3"] and after["1"] == before["1"]
    sizes = dict(inbox.query("SELECT cluster_id, size FROM clusters"))
    assert sizes[before["1"]] == 1 and sizes[before["3"]] == 2
    consistent(inbox)


def test_a_later_post_of_the_batch_merges_the_cases_it_links(inbox: SqlInbox) -> None:
    inbox.store("src", [post("1", POTHOLE), post("2", TRASH, minutes=1)])
    first = cases(inbox)
    bridge = post("3", "Жалоба сразу на яму и на мусор", minutes=2)
    bridge.duplicate_of = [("vk", "1"), ("vk", "2")]
    fresh = post("4", LIGHTS, minutes=3)
    late = post("5", "Про тот же мусор", minutes=4)
    late.duplicate_of = [("vk", "2")]  # its case is merged away by post 3 in this batch
    inbox.store("src", [fresh, bridge, late])
    ids = cases(inbox)
    assert ids["1"] == ids["2"] == ids["3"] == ids["5"] == first["1"] != ids["4"]
    ((merged_into,),) = inbox.query(
        "SELECT merged_into FROM clusters WHERE cluster_id = ?", (first["2"],)
    )
    assert merged_into == first["1"]
    consistent(inbox)


def test_a_batch_of_new_posts_takes_a_few_statements(inbox: SqlInbox) -> None:
    """200 new posts: the number of statements does not grow with the batch."""
    with statements(inbox) as seen:
        inbox.store("src", [post(str(n), f"{POTHOLE} {n}", minutes=n) for n in range(200)])
    assert len(seen) <= 20, [sql for sql, _ in seen]


@contextmanager
def statements(box: SqlInbox) -> Iterator[list[tuple[str, Any]]]:
    """Record every statement ``box`` runs (and one row of its parameters) meanwhile."""
    seen: list[tuple[str, Any]] = []
    execute, executemany = box._execute, box._executemany

    def one(sql: str, params: Any = ()) -> Any:
        seen.append((sql, params))
        return execute(sql, params)

    def many(sql: str, rows: Any) -> None:
        if rows:
            seen.append((sql, rows[0]))
        executemany(sql, rows)

    box._execute, box._executemany = one, many  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del box._execute, box._executemany


def test_no_statement_of_the_write_path_scans_posts_or_clusters(inbox: SqlInbox) -> None:
    """Every lookup the write path makes has an index (EXPLAIN of each statement of a
    realistic batch: new posts, copies, an edit that moves a post, a merge, answers, a
    deletion, then the near-duplicate index catching up)."""
    source = SourceConfig(id="src", type="import")
    filler = [
        post(f"f{n}", f"Обращение номер {n} про двор дома {n}", minutes=n) for n in range(300)
    ]
    inbox.store("src", filler)
    if isinstance(inbox, PostgresInbox):
        inbox.conn.execute("ANALYZE")
    inbox.store("src", [post("1", POTHOLE), post("2", TRASH, minutes=1)])
    bridge = post("3", "Жалоба сразу на яму и на мусор", minutes=2)
    bridge.duplicate_of = [("vk", "1"), ("vk", "2")]
    answer = post("9", "Ответ администрации: вывезем", minutes=8, kind="comment", parent="2",
                  author_is_official=True)  # fmt: skip
    gone = post("f7", "", deleted=True)
    with statements(inbox) as seen:
        inbox.store("src", [bridge, answer, gone, post("f1", TRASH, minutes=1)], cursor={"page": 2})
        ingest = Ingest(inbox, source)
        ingest.add(post("10", POTHOLE + " снова", minutes=20))
        ingest.close()
        near_duplicates(inbox).catch_up()
    checked = 0
    for sql, params in seen:
        if sql.split()[0] not in ("SELECT", "UPDATE") or "counters" in sql:
            continue
        plan = explain(inbox, sql, params)
        for table in ("posts", "clusters"):
            assert f"SCAN {table}" not in plan and f"Seq Scan on {table}" not in plan, (sql, plan)
        checked += 1
    assert checked >= 10


def explain(box: SqlInbox, sql: str, params: Any) -> str:
    if isinstance(box, PostgresInbox):
        with box.transaction():  # EXPLAIN of an UPDATE plans it without running it
            box._execute("SET LOCAL enable_seqscan = off")  # only a missing index scans
            lines = box.query(f"EXPLAIN {sql}", params)
        return "\n".join(line[0] for line in lines)
    return "\n".join(row[-1] for row in box.query(f"EXPLAIN QUERY PLAN {sql}", params))


def test_unchanged_posts_skip_the_stages_and_storage(inbox: SqlInbox) -> None:
    source = SourceConfig(id="src", type="import")
    texts = [POTHOLE, TRASH, LIGHTS]

    def collect(edited: str | None = None) -> Ingest:
        ingest = Ingest(inbox, source, batch_size=2)
        for n, text in enumerate(texts):
            ingest.add(post(str(n), edited if edited and n == 1 else text, minutes=n))
        ingest.close()
        return ingest

    first = collect()
    assert first.stored.new == 3
    hashes = dict(inbox.query("SELECT native_id, collected_hash FROM posts"))
    assert all(hashes.values()) and len(set(hashes.values())) == 3
    last = inbox.last_seq()
    with statements(inbox) as seen:
        again = collect()
    assert (again.stored.new, again.stored.updated, again.stored.unchanged) == (0, 0, 3)
    assert inbox.last_seq() == last
    assert all(sql.startswith("SELECT") for sql, _ in seen)  # nothing written
    edited = collect(TRASH + " Уже месяц!")
    assert (edited.stored.updated, edited.stored.unchanged) == (1, 2)
    assert "collected_hash" not in inbox.export_columns()


def test_the_near_duplicate_index_learns_stored_cases_without_reading_them(
    inbox: SqlInbox,
) -> None:
    source = SourceConfig(id="src", type="import")
    stage = near_duplicates(inbox)
    Ingest(inbox, source).close()
    ingest = Ingest(inbox, source)
    for n in range(5):
        ingest.add(post(str(n), f"{POTHOLE}, подъезд {n}", minutes=n))
    ingest.add(post("9", TRASH, minutes=9))
    ingest.close()
    assert stage.seq == inbox.last_seq()  # caught up from store()'s result
    stored = cases(inbox)
    index = stage.index
    for native_id, cluster_id in stored.items():
        assert index.group(index.by_key[("vk", native_id)]) == cluster_id
    assert stage.catch_up() == 0  # nothing left to read back


def test_case_summaries_kept_by_appending_equal_a_full_recount(inbox: SqlInbox) -> None:
    """Cases that only gain posts are summed up from their summary and the new posts; the
    result equals a recount of all their posts (authors seen before and new, two sources
    and platforms, a municipality named later, scores, an answer, a post older than the
    case's first: that one takes a full recount)."""
    texts = [POTHOLE, TRASH, LIGHTS]
    for batch in range(6):
        posts = []
        for n in range(12):
            p = post(f"{batch}-{n}", texts[n % 3], minutes=60 * batch + n, author_id=f"u{n % 4}")
            p.platform = "vk" if n % 2 else "telegram"
            p.source_id = f"src{n % 2}"
            p.complaint_score, p.is_complaint = (n % 5) / 5, n % 5 > 2
            p.municipality = "Тверь" if batch >= 3 and n == 4 else None
            posts.append(p)
        if batch == 4:
            posts.append(post("early", POTHOLE, minutes=-30, author_id="u9"))
        inbox.store("src", posts)
    answer = post("ans", "Ответ: яму заделаем", minutes=500, kind="comment", parent="1-0",
                  author_is_official=True)  # fmt: skip
    answer.platform = "telegram"
    inbox.store("src", [answer, post("late", POTHOLE, minutes=600, author_id="u1")])
    recounted = 0
    for (cluster_id,) in inbox.query("SELECT cluster_id FROM clusters WHERE size > 0"):
        members = [
            Member(*row)
            for row in inbox.query(
                f"SELECT {MEMBER_SELECT} FROM posts WHERE cluster_id = ? ORDER BY at, id",
                (cluster_id,),
            )
        ]
        stored = inbox.query(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM clusters WHERE cluster_id = ?",
            (cluster_id,),
        )[0]
        expected = summary_of(members)
        assert stored == tuple(expected[name] for name in SUMMARY_COLUMNS), cluster_id
        recounted += 1
    assert recounted >= 3
    consistent(inbox)


def test_batches_in_one_transaction_are_not_read_back_again_and_again(inbox: SqlInbox) -> None:
    """``glas import`` stores every batch in one outer transaction: the seq taken so far
    counts there too, so the near-duplicate index reads each stored post back at most once
    (before, it read the whole window again at every batch: quadratic in the file)."""
    source = SourceConfig(id="src", type="import")
    stage = near_duplicates(inbox)
    Ingest(inbox, source).close()
    ingest = Ingest(inbox, source, batch_size=2)
    with statements(inbox) as seen, inbox.transaction():
        for n in range(8):
            text = f"{POTHOLE}, подъезд {n}" if n % 2 else f"{TRASH}, корпус {n}"
            ingest.add(post(str(n), text, minutes=n))
        ingest.close()
        assert stage.seq == inbox.last_seq() > 0
    window_reads = [sql for sql, _ in seen if "seq <= ?" in sql and "FROM posts" in sql]
    assert window_reads == []
    assert inbox.last_seq() == stage.seq
    assert stage.catch_up() == 0
