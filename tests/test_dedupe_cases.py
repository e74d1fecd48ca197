"""Cases across runs: near-duplicates join stored cases, survive restarts, merge, stay quiet."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.config import ConfigError, load_config
from crawler.model import Post, SourceConfig
from crawler.pipeline import Ingest
from dedupe.settings import DedupeSettings
from storage import open_inbox
from storage.inbox import Inbox, StoreResult
from storage.sql import SqlInbox

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
COMPLAINT = (
    "Больше 10 лет самовольно зашитый световой фонарь над входом в подъезд 1. Необходима "
    "расшивка и восстановление прозрачного остекления без подтёков краски на стекле."
)
REPOST = (
    "Подслушано Заречный\n🔥 больше 10 лет самовольно зашитый световой фонарь над входом в "
    "подъезд 1! Нужна расшивка и восстановление прозрачного остекления без подтеков краски…"
)
OTHER = "Во дворе дома 7 по улице Садовой третью неделю не вывозят мусор, контейнеры полные"


def post(native_id: str, text: str, *, platform: str = "vk", days: float = 0, **kw: Any) -> Post:
    return Post(
        platform=platform,
        native_id=native_id,
        text=text,
        published_at=T0 + timedelta(days=days),
        **kw,
    )


def collect(inbox: Inbox, source: str, posts: list[Post], **kw: Any) -> StoreResult:
    """One run of one source through the real pipeline."""
    ingest = Ingest(inbox, SourceConfig(id=source, type="rss"), **kw)
    for item in posts:
        ingest.add(item)
    ingest.close()
    return ingest.stored


def case_of(inbox: Inbox, native_id: str) -> int:
    assert isinstance(inbox, SqlInbox)
    return inbox.query("SELECT cluster_id FROM posts WHERE native_id = ?", (native_id,))[0][0]


def cluster(inbox: SqlInbox, cluster_id: int) -> dict[str, Any]:
    return inbox.query_dicts("SELECT * FROM clusters WHERE cluster_id = ?", (cluster_id,))[0]


def test_repost_next_week_joins_last_weeks_case(inbox: SqlInbox) -> None:
    collect(inbox, "publics", [post("-1_5", COMPLAINT, author_id="u1"), post("-1_6", OTHER)])
    collect(
        inbox,
        "channel",
        [post("spb/77", REPOST, platform="telegram", days=7, author_id="u2")],
    )
    case = case_of(inbox, "-1_5")
    assert case_of(inbox, "spb/77") == case != case_of(inbox, "-1_6")
    row = cluster(inbox, case)
    assert (row["size"], row["authors"]) == (2, 2)
    assert json.loads(row["platforms"]) == ["telegram", "vk"]
    assert json.loads(row["sources"]) == ["channel", "publics"]
    assert (row["canonical_platform"], row["canonical_native_id"]) == ("vk", "-1_5")
    assert (row["first_seen"], row["last_seen"]) == ("2026-11-02T09:00:00Z", "2026-11-09T09:00:00Z")


def test_index_is_rebuilt_from_the_inbox_after_a_restart(db_url: str) -> None:
    first = open_inbox(db_url)
    collect(first, "publics", [post("-1_5", COMPLAINT), post("-1_6", OTHER)])
    first.close()
    again = open_inbox(db_url)  # a new process: nothing in memory
    collect(again, "channel", [post("spb/77", REPOST, platform="telegram", days=3)])
    assert case_of(again, "spb/77") == case_of(again, "-1_5")
    again.close()


def test_posts_stored_by_another_process_are_seen(db_url: str) -> None:
    """Each batch first reads rows changed since the last one (by seq)."""
    mine, other = open_inbox(db_url), open_inbox(db_url)
    collect(mine, "publics", [post("-1_6", OTHER)])  # index built
    collect(other, "publics", [post("-1_5", COMPLAINT)])  # written behind its back
    collect(mine, "channel", [post("spb/77", REPOST, platform="telegram", days=1)])
    assert case_of(mine, "spb/77") == case_of(mine, "-1_5")
    mine.close()
    other.close()


def test_a_post_linking_two_cases_merges_them(inbox: SqlInbox) -> None:
    a = "во дворе дома не вывозят мусор контейнеры переполнены третью неделю"
    b = "контейнеры переполнены третью неделю крысы бегают по детской площадке"
    collect(inbox, "publics", [post("a", a, author_id="u1"), post("b", b, days=1, author_id="u2")])
    case_a, case_b = case_of(inbox, "a"), case_of(inbox, "b")
    assert case_a != case_b
    last = inbox.last_seq()
    collect(inbox, "channel", [post("c", a + " крысы бегают по детской площадке", days=2)])
    assert case_of(inbox, "a") == case_of(inbox, "b") == case_of(inbox, "c") == case_a
    merged = cluster(inbox, case_a)
    assert (merged["size"], merged["authors"], merged["canonical_native_id"]) == (3, 2, "a")
    emptied = cluster(inbox, case_b)
    assert (emptied["size"], emptied["merged_into"]) == (0, case_a)
    # A reader keeping the last seq sees each change once: b moved, c new, both cases.
    changed = [r["native_id"] for r in inbox.export(since_seq=last)]
    assert sorted(changed) == ["b", "c"]
    cases = [r["cluster_id"] for r in inbox.export(table="clusters", since_seq=last)]
    assert sorted(cases) == sorted([case_a, case_b])
    assert inbox.query("SELECT count(*) FROM inbox") == [(1,)]


def test_original_collected_after_its_repost_joins_it(inbox: SqlInbox) -> None:
    collect(inbox, "wall-7", [post("-7_3", "Жесть! Сколько можно", repost_of="-5_10")])
    collect(inbox, "wall-5", [post("-5_10", COMPLAINT)])
    assert case_of(inbox, "-7_3") == case_of(inbox, "-5_10")


def test_recollection_writes_nothing(inbox: SqlInbox) -> None:
    collect(inbox, "publics", [post("-1_5", COMPLAINT)])
    collect(inbox, "channel", [post("spb/77", REPOST, platform="telegram")])
    last = inbox.last_seq()
    again = collect(inbox, "channel", [post("spb/77", REPOST, platform="telegram")])
    assert again == StoreResult(unchanged=1)
    assert inbox.last_seq() == last


def test_edit_moves_a_post_to_the_case_it_now_copies(inbox: SqlInbox) -> None:
    collect(inbox, "publics", [post("-1_5", COMPLAINT), post("-1_6", OTHER, days=1)])
    collect(inbox, "publics", [post("-1_6", REPOST, days=1, edited_at=T0 + timedelta(days=2))])
    assert case_of(inbox, "-1_6") == case_of(inbox, "-1_5")


def test_settings_from_sources_yaml(write_sources: Any, inbox: SqlInbox) -> None:
    path = write_sources(
        """
        dedupe:
          threshold: 99
          window: 14d
        sources:
          - id: feed
            type: rss
            url: http://x.invalid/feed
        """
    )
    settings = load_config(path).dedupe
    assert settings.threshold == 99 and settings.window == timedelta(days=14)
    collect(inbox, "publics", [post("-1_5", COMPLAINT)], dedupe=settings)
    collect(inbox, "channel", [post("spb/77", REPOST, platform="telegram")], dedupe=settings)
    assert case_of(inbox, "spb/77") != case_of(inbox, "-1_5")  # too strict for this repost
    off = DedupeSettings(enabled=False)
    collect(inbox, "channel", [post("spb/78", REPOST + " Когда?", platform="telegram")], dedupe=off)
    assert case_of(inbox, "spb/78") not in (case_of(inbox, "-1_5"), case_of(inbox, "spb/77"))
    collect(inbox, "wall-9", [post("-9_1", "Жесть!", repost_of="-1_5")], dedupe=off)
    assert case_of(inbox, "-9_1") == case_of(inbox, "-1_5")  # reposts are linked all the same


def test_bad_settings_name_file_and_line(write_sources: Any) -> None:
    path = write_sources(
        """
        sources:
          - id: feed
            type: rss
            url: http://x.invalid/feed
        dedupe:
          threshold: 120
          windw: 14d
        """
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.messages == [
        f"{path}:6: dedupe: 'threshold' must be at most 100, found the number 120",
        f"{path}:7: dedupe: unknown key 'windw'; did you mean 'window'?",
    ]


def test_glas_import_clusters_near_duplicates(glas: Any, tmp_path: Path, db_url: str) -> None:
    rows = [
        {"platform": "vk", "native_id": "-1_5", "text": COMPLAINT, "published_at": T0.isoformat()},
        {"platform": "telegram", "native_id": "spb/77", "text": REPOST},
        {"platform": "vk", "native_id": "-1_6", "text": OTHER},
    ]
    (tmp_path / "posts.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8"
    )
    result = glas("--db", db_url, "import", "posts.jsonl")
    assert result.returncode == 0, result.stderr
    with open_inbox(db_url) as box:
        assert isinstance(box, SqlInbox)
        sizes = [r[0] for r in box.query("SELECT size FROM inbox ORDER BY size")]
    assert sizes == [1, 2]
