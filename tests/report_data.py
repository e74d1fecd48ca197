"""An inbox with known content for `glas report` (tests/test_report*.py).

The period is 2026-11-20 … 2026-11-27 (UTC), the one before it 2026-11-13 … 2026-11-20.
Posts carry their flags (topics, places, complaint) as flagging would set them; posts with the
same ``dedupe_key`` form one case; official replies (``parent``) answer the post they reply
to. What each section must show is written beside the posts that make it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crawler.model import Post

SINCE = datetime(2026, 11, 20, tzinfo=UTC)
UNTIL = datetime(2026, 11, 27, tzinfo=UTC)
LENINA = {"kind": "street", "name": "улица Ленина"}
MIRA = {"kind": "street", "name": "улица Мира"}
DISTRICT = {"kind": "district", "name": "Северный микрорайон"}


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def resident(
    platform: str,
    native_id: str,
    author: str,
    when: datetime,
    key: str,
    topics: list[str],
    places: list[dict[str, str]] | None,
    municipality: str = "Заречный",
    **extra: Any,
) -> Post:
    text = f"Жалоба {key}: {topics[0]} — {places[0]['name'] if places else municipality}"
    return Post(
        platform=platform,
        native_id=native_id,
        url=f"https://example.invalid/{platform}/{native_id}",
        author_id=author,
        author_name=f"Житель {author}",
        text=text,
        published_at=when,
        dedupe_key=key,
        topics=topics,
        places=places,
        municipality=municipality,
        **({"is_complaint": True, "complaint_score": 0.9} | extra),
    )


def official(platform: str, native_id: str, parent: str, when: datetime) -> Post:
    return Post(
        platform=platform,
        native_id=native_id,
        kind="comment",
        parent=parent,
        author_id="zarechny_admin",
        author_name="Администрация",
        author_is_official=True,
        text="Здравствуйте! Передали в службу, работы выполнят на этой неделе.",
        published_at=when,
        is_complaint=False,
        topics=[],
    )


def posts() -> list[tuple[str, list[Post]]]:
    """(source id, posts) in the order to store them."""
    return [
        (
            "zarechny-vk",
            [
                # Case D (previous period): roads on улица Ленина, answered after 24 h.
                resident("vk", "-1_50", "501", at(15), "kD", ["roads"], [LENINA]),
                official("vk", "-1_50_r", "-1_50", at(16)),
                # Case E (previous period): waste on улица Мира, never answered.
                resident("vk", "-1_60", "502", at(14), "kE", ["waste"], [MIRA]),
                # Case A: roads on улица Ленина again (6 days after D's answer): 3 residents
                # on two platforms (two here, one in Telegram), answered after 6 h.
                resident("vk", "-1_1", "101", at(21, 10), "kA", ["roads"], [LENINA, DISTRICT]),
                resident("vk", "-1_2", "102", at(21, 12), "kA", ["roads"], [LENINA]),
                official("vk", "-1_1_r", "-1_1", at(21, 16)),
                # Case B: waste on улица Мира, never answered: overdue (24 h norm).
                resident("vk", "-1_3", "103", at(22, 10), "kB", ["waste"], [MIRA]),
                # Case F: waste on улица Мира, first seen 8 hours before the period ends:
                # unanswered, but still within its 24 h norm (waiting).
                resident("vk", "-1_4", "104", at(26, 16), "kF", ["waste"], [MIRA]),
                # Not complaints, or by an official: never counted.
                resident(
                    "vk", "-1_5", "105", at(22, 11), "kN", ["culture"], None, is_complaint=False
                ),
            ],
        ),
        (
            "zarechny-tg",
            [
                resident("telegram", "zar/7", "9001", at(22, 9), "kA", ["roads"], [LENINA]),
            ],
        ),
        (
            "gorodok-ok",
            [
                # Case C (Городок): housing and waste, answered after 48 h (24 h norm: late).
                resident("ok", "c1", "201", at(23, 8), "kC", ["housing", "waste"], None, "Городок"),
                official("ok", "c1_r", "c1", at(25, 8)),
                # Case G (Городок): roads; 48 h norm for roads, answered after 30 h: in time.
                resident("ok", "c2", "202", at(24, 8), "kG", ["roads"], None, "Городок"),
                official("ok", "c2_r", "c2", at(25, 14)),
            ],
        ),
    ]


SOURCES = """
official_accounts:
  vk: [zarechny_admin]
  ok: [zarechny_admin]
routing:
  default: Центр управления регионом
  rules:
    - {topic: roads, agency: Комитет по дорожному хозяйству}
norms:
  default: 24h
  rules:
    - {topic: roads, within: 48h}
sources:
  - {id: zarechny-vk, type: rss, url: "http://replay.invalid/feed.xml"}
"""


def fill(inbox: Any) -> None:
    for source_id, batch in posts():
        for post in batch:
            post.source_id = source_id
        inbox.store(source_id, batch)


PERIOD_DAYS = (UNTIL - SINCE) / timedelta(days=1)
