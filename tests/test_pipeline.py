"""Normalisation and the ingest pipeline (batches, checkpoints, invalid items)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from crawler.model import Checkpoint, Post, SourceConfig, SourceInfo
from crawler.normalize import clean_whitespace, normalise, plain_text
from crawler.pipeline import Ingest
from dedupe.exact import normalise_for_key, text_key
from storage.sql import SqlInbox

MSK = ZoneInfo("Europe/Moscow")


def test_html_becomes_plain_text_with_line_breaks() -> None:
    html = (
        "<p>Жители дома&nbsp;12 просят <b>починить</b> лифт.</p>"
        "<p>Подробнее: <a href='https://example.org/x'>обращение</a><br/>Спасибо</p>"
        "<script>alert(1)</script>"
    )
    assert plain_text(html) == (
        "Жители дома 12 просят починить лифт.\n\nПодробнее: обращение\nСпасибо"
    )


def test_plain_text_keeps_its_lines_and_symbols() -> None:
    text = "  Яма на дороге  <3\r\n\r\n\r\n\r\nул. Мира, 5 — когда починят?  "
    assert plain_text(text) == "Яма на дороге <3\n\nул. Мира, 5 — когда починят?"


def test_whitespace_rules() -> None:
    assert clean_whitespace("a\u00a0\u00a0b\t c\n\n\n\nd ") == "a b c\n\nd"


def test_naive_times_are_read_in_the_source_zone() -> None:
    post = Post(
        platform="web",
        native_id="1",
        text="x",
        published_at=datetime(2026, 11, 20, 12, 0),
        edited_at=datetime(2026, 11, 20, 12, 30, 15, 500, tzinfo=UTC),
    )
    normalise(post, MSK)
    assert post.published_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert post.edited_at == datetime(2026, 11, 20, 12, 30, 15, tzinfo=UTC)


def test_exact_key_ignores_case_yo_punctuation_and_links() -> None:
    a = "Ёлки во дворе спилили! Фото: https://vk.com/photo1_2"
    b = "елки во дворе   спилили... фото"
    assert normalise_for_key(a) == normalise_for_key(b) == "елки во дворе спилили фото"
    assert text_key(a) == text_key(b) is not None
    assert text_key("Спасибо!") is None


def _ingest(inbox: SqlInbox, batch_size: int = 2) -> Ingest:
    return Ingest(
        inbox,
        SourceConfig(id="src", type="rss", timezone="Europe/Moscow", municipality="Тверь"),
        batch_size=batch_size,
    )


def _post(n: int) -> Post:
    return Post(platform="rss", native_id=str(n), text=f"<p>Новость номер {n} о ремонте дорог</p>")


@pytest.mark.both_backends
def test_batches_are_committed_as_they_fill(inbox: SqlInbox) -> None:
    ingest = _ingest(inbox, batch_size=2)
    for n in range(3):
        ingest.accept(_post(n))
    assert inbox.query("SELECT count(*) FROM posts")[0][0] == 2
    ingest.close()
    rows = inbox.query("SELECT source_id, municipality, text FROM posts ORDER BY id")
    assert len(rows) == 3 and rows[0] == ("src", "Тверь", "Новость номер 0 о ремонте дорог")
    assert ingest.stored.new == 3


@pytest.mark.both_backends
def test_checkpoint_commits_buffer_with_cursor(inbox: SqlInbox) -> None:
    ingest = _ingest(inbox, batch_size=100)
    ingest.accept(SourceInfo(title="Лента района"))
    ingest.accept(_post(1))
    ingest.accept(Checkpoint({"last": 1}))
    assert inbox.cursor("src") == {"last": 1}
    assert inbox.query("SELECT count(*) FROM posts")[0][0] == 1
    ingest.accept(_post(2))
    ingest.close()  # no checkpoint: posts kept, cursor stays
    assert inbox.cursor("src") == {"last": 1}
    assert inbox.query("SELECT count(*) FROM posts")[0][0] == 2


@pytest.mark.both_backends
def test_invalid_posts_are_counted_not_stored(inbox: SqlInbox) -> None:
    ingest = _ingest(inbox)
    ingest.accept(Post(platform="myspace", native_id="1", text="x"))
    ingest.accept(Post(platform="rss", native_id=" ", text="x"))
    ingest.accept(Post(platform="rss", native_id="2", text="x", kind="story"))
    ingest.accept("not a post")
    ingest.close()
    assert ingest.invalid == 3
    assert any("myspace" in w for w in ingest.warnings)
    assert any("not a Post" in w for w in ingest.warnings)
    assert inbox.query("SELECT count(*) FROM posts")[0][0] == 0


def test_list_items_are_one_line_each() -> None:
    html = "<p>Итоги встречи:</p><ul><li>качели</li><li>скамейки</li></ul><p>Спасибо</p>"
    assert plain_text(html) == "Итоги встречи:\n\nкачели\nскамейки\n\nСпасибо"


def test_the_pipeline_tunes_the_garbage_collector_for_many_short_lived_objects() -> None:
    """Default thresholds cost 8 % of the pipeline's CPU in full collections (crawler.gctuning)."""
    import gc

    from crawler import gctuning
    from crawler.pipeline import default_stages

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        default_stages()
        assert gc.get_threshold() == (gctuning.YOUNG, gctuning.OLDER, gctuning.OLDER)
    finally:
        gc.set_threshold(*before)
