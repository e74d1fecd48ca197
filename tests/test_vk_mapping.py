"""VK items → Posts: the real wall.get capture (one field per test), real comment texts from the
St Petersburg CSV built into getComments-shaped items in memory, and the made-up fixture wall.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from crawler.model import Post
from spiders.vk_mapping import Names, Officials, comment, flatten, parse_geo, plain, wall_post
from tests.conftest import FIXTURES, shared

OWNER = -61006621


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    return json.loads(shared("fixtures/vk_wall_get_-61006621.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def posts(real: dict[str, Any]) -> list[Post]:
    return [wall_post(item) for item in real["response"]["items"]]


def test_real_every_item_maps(real: dict[str, Any], posts: list[Post]) -> None:
    assert len(posts) == len(real["response"]["items"]) == 20
    assert {(p.platform, p.kind) for p in posts} == {("vk", "post")}


def test_real_native_ids_and_urls(real: dict[str, Any], posts: list[Post]) -> None:
    for item, post in zip(real["response"]["items"], posts, strict=True):
        assert post.native_id == f"{OWNER}_{item['id']}"
        assert post.url == f"https://vk.com/wall{OWNER}_{item['id']}"
    assert len({p.native_id for p in posts}) == 20


def test_real_text_and_dates(real: dict[str, Any], posts: list[Post]) -> None:
    first = real["response"]["items"][0]
    assert posts[0].text == first["text"]
    assert posts[0].published_at == datetime.fromtimestamp(first["date"], UTC)
    assert posts[0].published_at.tzinfo is UTC


def test_real_metrics(real: dict[str, Any], posts: list[Post]) -> None:
    for item, post in zip(real["response"]["items"], posts, strict=True):
        assert post.metrics == {
            "likes": item["likes"]["count"],
            "reposts": item["reposts"]["count"],
            "views": item["views"]["count"],
            "comments": item["comments"]["count"],
        }


def test_real_authors_and_official_flag(real: dict[str, Any], posts: list[Post]) -> None:
    for item, post in zip(real["response"]["items"], posts, strict=True):
        assert post.author_id == str(item["from_id"])
        assert post.author_is_official == (item["from_id"] == OWNER)
        assert post.raw["signer_id"] == item["signer_id"]


def test_real_attachments_are_summaries_without_keys(
    real: dict[str, Any], posts: list[Post]
) -> None:
    item = real["response"]["items"][0]
    summary = posts[0].raw["attachments"]
    assert [a["type"] for a in summary] == [a["type"] for a in item["attachments"]]
    assert summary[0]["url"] == item["attachments"][0]["photo"]["photo_2560"]
    dumped = json.dumps([p.raw for p in posts])
    assert "access_key" not in dumped
    assert item["attachments"][0]["photo"]["access_key"] not in dumped


def test_real_raw_keeps_flags_only_when_set(real: dict[str, Any], posts: list[Post]) -> None:
    assert {i["marked_as_ads"] for i in real["response"]["items"]} == {0}
    assert not any("marked_as_ads" in p.raw or "is_pinned" in p.raw for p in posts)
    assert all(p.raw["post_type"] == "post" for p in posts)


# -- real comments, in the getComments item shape ------------------------------------------------
CENTRAL = -143265175


def csv_comments() -> list[dict[str, str]]:
    with shared("vk/vk_comments_spb_central.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def as_item(row: dict[str, str], number: int, post: int, **extra: Any) -> dict[str, Any]:
    when = datetime.strptime(row["published"], "%Y.%m.%d %H:%M").replace(tzinfo=UTC)
    author = -183888501 if row["author_is_official"] == "True" else 700000000 + number
    return {
        "id": number,
        "from_id": author,
        "post_id": post,
        "owner_id": CENTRAL,
        "parents_stack": [],
        "date": int(when.timestamp()),
        "text": row["text"],
        "likes": {"count": int(row["likes"] or 0), "user_likes": 0, "can_like": 1},
        **extra,
    }


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return csv_comments()


def test_real_comments_all_map_with_text_and_ids(rows: list[dict[str, str]]) -> None:
    assert len(rows) == 1260
    mapped = [comment(as_item(r, int(r["comment_id"]), 1), CENTRAL, 1) for r in rows]
    assert len({p.native_id for p in mapped}) == 1260
    assert all(p.kind == "comment" and p.parent == f"{CENTRAL}_1" for p in mapped)
    assert all("[club" not in p.text and "[id" not in p.text for p in mapped)


def test_real_mention_becomes_name(rows: list[dict[str, str]]) -> None:
    row = next(r for r in rows if r["text"].startswith("[club183888501|"))
    post = comment(as_item(row, 5, 1), CENTRAL, 1)
    assert post.text.startswith("Жилищный комитет Санкт-Петербурга, а это на Рубинштейна")


def test_real_official_replies_answer_their_comment(rows: list[dict[str, str]]) -> None:
    officials_rows = [r for r in rows if r["author_is_official"] == "True"]
    assert len(officials_rows) == 136
    top = as_item(rows[0], 10, 7)
    replies = [
        as_item(r, 11 + n, 7, parents_stack=[10], reply_to_comment=10, reply_to_user=1)
        for n, r in enumerate(officials_rows)
    ]
    top["thread"] = {"count": len(replies), "items": replies}
    names = Names().add({"groups": [{"id": 183888501, "name": "Администрация района"}]})
    mapped = [
        comment(i, CENTRAL, 7, names, Officials.parse(["club183888501"])) for i in flatten([top])
    ]
    assert mapped[0].parent == f"{CENTRAL}_7" and not mapped[0].author_is_official
    assert all(p.author_is_official for p in mapped[1:])
    assert {p.parent for p in mapped[1:]} == {f"{CENTRAL}_7_c10"}
    assert {p.author_name for p in mapped[1:]} == {"Администрация района"}
    assert mapped[1].url == f"https://vk.com/wall{CENTRAL}_7?reply=11&thread=10"


def test_officials_parse_every_form() -> None:
    found = Officials.parse([-1, "club22", "public33", "id44", "-55", "https://vk.com/Gkh_Spb"])
    assert found.ids == {-1, -22, -33, 44, -55}
    assert found.screen_names == {"gkh_spb"}


def test_official_by_screen_name_and_not_by_default() -> None:
    names = Names().add({"profiles": [{"id": 9, "first_name": "А", "screen_name": "Admin_Z"}]})
    item = {"id": 3, "from_id": 9, "date": 1, "text": "Ответ", "parents_stack": [2]}
    assert comment(item, -5, 1, names, Officials.parse(["admin_z"])).author_is_official
    assert not comment(item, -5, 1, names).author_is_official
    assert comment({**item, "from_id": -5}, -5, 1).author_is_official  # the community itself


def test_deleted_comment_is_kept_and_marked() -> None:
    post = comment({"id": 4, "from_id": 0, "date": 1, "text": "", "deleted": True}, -5, 1)
    assert post.deleted is True
    assert post.text == "" and post.author_id is None and post.raw["deleted"] is True


# -- made-up fixture wall: repost, geo, ads, pinned ----------------------------------------------
@pytest.fixture(scope="module")
def wall() -> dict[str, Any]:
    return json.loads((FIXTURES / "vk" / "zarechny_wall.json").read_text("utf-8"))


def by_id(wall: dict[str, Any], number: int) -> Post:
    item = next(p for p in wall["posts"] if p["id"] == number)
    return wall_post(item, Names().add(wall))


def test_repost_links_the_original_and_takes_its_text(wall: dict[str, Any]) -> None:
    post = by_id(wall, 4)
    assert post.repost_of == "-305000001_888"
    assert post.text.startswith("График отключения отопления")
    assert post.raw["copy_history"][0]["attachments"][0]["url"].startswith("https://zarechny")


def test_geo_and_place(wall: dict[str, Any]) -> None:
    post = by_id(wall, 3)
    assert post.geo == {"lat": 56.224976, "lon": 93.507524}
    assert post.raw["geo"]["place"] == "Школьная улица"
    assert parse_geo({"coordinates": {"latitude": 1.5, "longitude": 2}}) == {"lat": 1.5, "lon": 2}
    assert parse_geo({"coordinates": "junk"}) is None


def test_photo_takes_the_largest_size(wall: dict[str, Any]) -> None:
    urls = [a["url"] for a in by_id(wall, 3).raw["attachments"]]
    assert urls == [
        "https://sun9-1.userapi.com/impg/z457000001_z.jpg",
        "https://sun9-1.userapi.com/impg/z457000002_z.jpg",
    ]


def test_ads_and_pinned_flags_stay_in_raw(wall: dict[str, Any]) -> None:
    assert by_id(wall, 5).raw["marked_as_ads"] == 1
    assert by_id(wall, 1).raw["is_pinned"] == 1
    assert "marked_as_ads" not in by_id(wall, 2).raw


def test_edited_and_author_names(wall: dict[str, Any]) -> None:
    post = by_id(wall, 6)
    assert post.edited_at is not None and post.edited_at > post.published_at
    assert post.author_name == "Житель Третий"
    assert by_id(wall, 2).author_name == "Житель Первый"


def test_plain_keeps_brackets_that_are_not_mentions() -> None:
    assert plain("[id1|Анна], дом [5] на [Лесной]") == "Анна, дом [5] на [Лесной]"
