"""The SQLite inbox: idempotent upserts, seq stamping, exact-duplicate clusters, cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler.model import Post, SourceConfig
from dedupe.exact import text_key
from storage import InboxError, SchemaOutdated, open_inbox
from storage.inbox import RunRecord, StoreResult
from storage.sql import SqlInbox
from storage.sqlite import SqliteInbox

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def post(native_id: str, text: str, *, minutes: int = 0, **fields: object) -> Post:
    p = Post(
        platform="vk",
        native_id=native_id,
        source_id="src",
        text=text,
        published_at=T0 + timedelta(minutes=minutes),
        **fields,
    )  # type: ignore[arg-type]
    p.dedupe_key = text_key(text)
    return p


COMPLAINT = "Во дворе дома 5 по улице Ленина третью неделю не вывозят мусор"


def rows(box: SqlInbox, sql: str, *args: object) -> list[tuple]:
    return box.query(sql, args)


def test_new_posts_are_stored_with_increasing_seq(inbox: SqlInbox) -> None:
    result = inbox.store("src", [post("1", "первый текст жителя о ямах"), post("2", "второй")])
    assert result == StoreResult(new=2)
    seqs = [r[0] for r in rows(inbox, "SELECT seq FROM posts ORDER BY id")]
    assert seqs == sorted(seqs) and len(set(seqs)) == 2
    assert inbox.last_seq() >= max(seqs)


def test_recollecting_unchanged_post_keeps_seq(inbox: SqlInbox) -> None:
    inbox.store("src", [post("1", COMPLAINT)])
    before = rows(inbox, "SELECT seq, updated_at FROM posts")
    last = inbox.last_seq()
    again = inbox.store("src", [post("1", COMPLAINT)])
    assert again == StoreResult(unchanged=1)
    assert rows(inbox, "SELECT seq, updated_at FROM posts") == before
    assert inbox.last_seq() == last


def test_edited_post_updates_in_place_with_new_seq(inbox: SqlInbox) -> None:
    inbox.store("src", [post("1", COMPLAINT), post("2", "другой текст о дороге и ямах")])
    (old_seq,) = rows(inbox, "SELECT seq FROM posts WHERE native_id = '1'")[0]
    other = rows(inbox, "SELECT seq FROM posts WHERE native_id = '2'")
    edited = post(
        "1", COMPLAINT + ". Управляющая компания не отвечает!", edited_at=T0 + timedelta(hours=1)
    )
    assert inbox.store("src", [edited]) == StoreResult(updated=1)
    [(new_seq, text)] = rows(inbox, "SELECT seq, text FROM posts WHERE native_id = '1'")
    assert new_seq > old_seq and text.endswith("не отвечает!")
    assert rows(inbox, "SELECT seq FROM posts WHERE native_id = '2'") == other


def test_metrics_growth_is_a_change(inbox: SqlInbox) -> None:
    inbox.store("src", [post("1", COMPLAINT, metrics={"likes": 1})])
    assert inbox.store("src", [post("1", COMPLAINT, metrics={"likes": 7})]).updated == 1
    assert rows(inbox, "SELECT metrics FROM posts")[0][0] == '{"likes":7}'


def test_same_text_in_two_places_is_one_cluster(inbox: SqlInbox) -> None:
    inbox.store("src", [post("a", COMPLAINT, minutes=5, author_id="u1")])
    inbox.store(
        "other",
        [
            Post(
                platform="telegram",
                native_id="ch/9",
                source_id="other",
                author_id="u2",
                text="ВО ДВОРЕ дома 5 по улице Ленина третью неделю не вывозят мусор!!!",
                published_at=T0,
                dedupe_key=text_key(
                    "ВО ДВОРЕ дома 5 по улице Ленина третью неделю не вывозят мусор!!!"
                ),
            ),
        ],
    )
    clusters = rows(inbox, "SELECT DISTINCT cluster_id FROM posts")
    assert len(clusters) == 1
    cluster = dict(
        zip(
            ("size", "authors", "platforms", "sources", "canonical", "first", "last"),
            rows(
                inbox,
                "SELECT size, authors, platforms, sources, canonical_native_id, "
                "first_seen, last_seen FROM clusters WHERE size > 0",
            )[0],
            strict=True,
        )
    )
    assert cluster == {
        "size": 2,
        "authors": 2,
        "platforms": '["telegram","vk"]',
        "sources": '["other","src"]',
        "canonical": "ch/9",
        "first": "2026-11-20T09:00:00Z",
        "last": "2026-11-20T09:05:00Z",
    }
    flags = dict(rows(inbox, "SELECT native_id, is_canonical FROM posts"))
    assert flags == {"a": 0, "ch/9": 1}


def test_short_texts_are_not_clustered(inbox: SqlInbox) -> None:
    inbox.store("src", [post("1", "Спасибо!"), post("2", "Спасибо!")])
    assert len(rows(inbox, "SELECT DISTINCT cluster_id FROM posts")) == 2


def test_edit_moves_post_to_its_own_cluster_and_stamps_both(inbox: SqlInbox) -> None:
    inbox.store("src", [post("1", COMPLAINT), post("2", COMPLAINT, minutes=1)])
    (shared,) = rows(inbox, "SELECT DISTINCT cluster_id FROM posts")[0]
    cluster_seq = rows(inbox, "SELECT seq FROM clusters WHERE cluster_id = ?", shared)[0][0]
    inbox.store("src", [post("2", "Совсем другая жалоба: на остановке нет освещения", minutes=1)])
    ids = dict(rows(inbox, "SELECT native_id, cluster_id FROM posts"))
    assert ids["1"] == shared and ids["2"] != shared
    size, seq = rows(inbox, "SELECT size, seq FROM clusters WHERE cluster_id = ?", shared)[0]
    assert size == 1 and seq > cluster_seq


def test_every_change_visible_once_in_seq_order(inbox: SqlInbox) -> None:
    """A reader keeping the last seq sees every new or changed row exactly once."""
    seen: dict[str, int] = {}
    last = 0

    def read() -> None:
        nonlocal last
        for row in inbox.export(since_seq=last):
            assert row["seq"] > last
            last = row["seq"]
            seen[row["native_id"]] = seen.get(row["native_id"], 0) + 1

    inbox.store("src", [post("1", COMPLAINT), post("2", "другой текст о дороге и ямах")])
    read()
    assert seen == {"1": 1, "2": 1}
    inbox.store("src", [post("1", COMPLAINT)])  # unchanged
    read()
    assert seen == {"1": 1, "2": 1}
    inbox.store("src", [post("2", "другой текст о дороге и ямах, обновлено")])
    read()
    assert seen == {"1": 1, "2": 2}


def test_cursor_is_saved_with_posts_and_rolled_back_with_them(inbox: SqlInbox) -> None:
    inbox.store("src", [post("1", COMPLAINT)], cursor={"last_id": 1})
    assert inbox.cursor("src") == {"last_id": 1}
    with pytest.raises(RuntimeError), inbox.transaction():
        inbox.store(
            "src", [post("2", "ещё один текст о проблеме с отоплением")], cursor={"last_id": 2}
        )
        raise RuntimeError("crash between store and commit")
    assert inbox.cursor("src") == {"last_id": 1}
    assert rows(inbox, "SELECT native_id FROM posts") == [("1",)]


def test_answer_fields_survive_recollection_without_them(inbox: SqlInbox) -> None:
    answered = T0 + timedelta(hours=2)
    inbox.store(
        "src",
        [post("1", COMPLAINT, answered_at=answered, answered_by="admin", response_seconds=7200)],
    )
    inbox.store("src", [post("1", COMPLAINT + " (дополнено)")])
    assert rows(inbox, "SELECT answered_at, answered_by, response_seconds FROM posts") == [
        ("2026-11-20T11:00:00Z", "admin", 7200)
    ]


def test_naive_times_never_reach_storage(inbox: SqlInbox) -> None:
    bad = Post(platform="vk", native_id="1", text="x", published_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        inbox.store("src", [bad])


def test_runs_and_source_health(inbox: SqlInbox) -> None:
    source = SourceConfig(id="src", type="rss")
    inbox.sync_sources([source])
    run = inbox.start_run("src")
    inbox.finish_run(run, RunRecord("src", "failed", error="HTTP 500 from http://x"))
    state = inbox.source_state("src")
    assert state and state["consecutive_failures"] == 1 and state["last_error"].startswith("HTTP")
    run = inbox.start_run("src")
    inbox.finish_run(run, RunRecord("src", "ok", stored=StoreResult(new=3)))
    state = inbox.source_state("src")
    assert state and state["consecutive_failures"] == 0 and state["last_error"] is None
    assert state["last_success_at"] and state["last_new_at"]
    assert rows(inbox, "SELECT status, new FROM runs ORDER BY run_id") == [("failed", 0), ("ok", 3)]


def test_interrupted_runs_are_closed(inbox: SqlInbox) -> None:
    inbox.start_run("src")
    assert inbox.close_interrupted_runs() == 1
    assert rows(inbox, "SELECT status FROM runs") == [("interrupted",)]


def test_sources_table_follows_config(inbox: SqlInbox) -> None:
    inbox.sync_sources([SourceConfig(id="a", type="rss"), SourceConfig(id="b", type="rss")])
    inbox.sync_sources([SourceConfig(id="a", type="rss", municipality="Тверь")])
    assert rows(inbox, "SELECT source_id, municipality, in_config FROM sources ORDER BY 1") == [
        ("a", "Тверь", 1),
        ("b", None, 0),
    ]


def test_inbox_view_shows_one_row_per_case(inbox: SqlInbox) -> None:
    inbox.store(
        "src",
        [
            post("1", COMPLAINT),
            post("2", COMPLAINT, minutes=3),
            post("3", "На остановке Школьная нет освещения уже месяц"),
        ],
    )
    view = rows(inbox, "SELECT native_id, size FROM inbox ORDER BY native_id")
    assert view == [("1", 2), ("3", 1)]


def test_wal_and_busy_timeout(tmp_path: Path) -> None:
    box = SqliteInbox(tmp_path / "x.db")
    assert box.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    box.close()


def test_schema_version_and_upgrade(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An inbox made by an older Glas is refused until `glas db upgrade` migrates it."""
    open_inbox(db_url).close()
    from storage import core, migrations

    future = migrations.Migration(
        migrations.LATEST + 1,
        "add posts.lang",
        sqlite="ALTER TABLE posts ADD COLUMN lang TEXT",
        postgres="ALTER TABLE posts ADD COLUMN lang text",
    )
    monkeypatch.setattr(core, "MIGRATIONS", (*migrations.MIGRATIONS, future))
    monkeypatch.setattr(core, "LATEST", future.version)
    with pytest.raises(SchemaOutdated, match="glas db upgrade"):
        open_inbox(db_url)
    box = open_inbox(db_url, check_schema=False)
    assert box.upgrade() == [f"{future.version}: add posts.lang"]
    assert box.upgrade() == []
    assert "lang" in box.export_columns("posts")
    box.close()
    open_inbox(db_url).close()
    monkeypatch.undo()
    with pytest.raises(InboxError, match="newer than this Glas"):
        open_inbox(db_url)


def test_open_inbox_urls(tmp_path: Path) -> None:
    box = open_inbox(f"sqlite:///{tmp_path}/a.db")
    assert Path(box.url) == tmp_path / "a.db"
    box.close()
    with pytest.raises(InboxError, match="no inbox here"):
        open_inbox(str(tmp_path / "missing.db"), create=False)
    with pytest.raises(InboxError, match="unsupported"):
        open_inbox("mysql://x")
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InboxError, match="not a usable SQLite"):
        open_inbox(str(tmp_path / "junk.db"))


def test_editing_a_canonical_post_stamps_its_case(inbox: SqlInbox) -> None:
    """The inbox view shows the canonical post's text, so a case reader must see the edit."""
    inbox.store("src", [post("1", COMPLAINT), post("2", COMPLAINT, minutes=5)])
    (cluster_seq,) = rows(inbox, "SELECT seq FROM clusters WHERE size = 2")[0]
    inbox.store("src", [post("2", COMPLAINT, minutes=5, metrics={"likes": 3})])
    assert rows(inbox, "SELECT seq FROM clusters WHERE size = 2")[0][0] == cluster_seq
    inbox.store("src", [post("1", COMPLAINT, metrics={"likes": 3})])
    assert rows(inbox, "SELECT seq FROM clusters WHERE size = 2")[0][0] > cluster_seq
