"""vk_wall and vk_search collectors in process against the local VK server: what each run
yields, the cursor, incremental comments, max_posts backlog, unavailable walls and posts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from crawler.config import Defaults
from crawler.model import Checkpoint, Post, SourceError, SourceInfo
from spiders import vk_search, vk_wall
from spiders.base import Collection
from tests.conftest import FIXTURES
from tests.vk_server import VkServer, load_wall

OWNER = -201234567
NOW = time.time()


@pytest.fixture
def vk(monkeypatch: pytest.MonkeyPatch) -> Iterator[VkServer]:
    # Four tokens used in turn: 12 requests a second instead of 3 keeps these tests quick.
    monkeypatch.setenv("VK_TOKEN", ",".join(f"vk1.a.{uuid.uuid4().hex}" for _ in range(4)))
    with VkServer() as server:
        server.add_wall(load_wall(FIXTURES / "vk" / "zarechny_wall.json", newest=NOW - 3600))
        yield server


def run(
    vk: VkServer, cursor: dict[str, Any] | None = None, **options: Any
) -> tuple[list[Any], Collection]:
    source = vk_wall.Options(id="zarechny", type="vk_wall", **{"owner": "zarechny_news", **options})
    collection = Collection(
        source=source,
        cursor=cursor or {},
        retries=0,
        defaults=Defaults(vk_api_url=vk.url, retry_backoff="0s"),
        official_accounts={"vk": ["zhkh_zarechny", 700000099]},
    )
    return list(vk_wall.collect(collection)), collection


def posts(items: list[Any]) -> dict[str, Post]:
    return {i.native_id: i for i in items if isinstance(i, Post)}


def last_cursor(items: list[Any]) -> dict[str, Any]:
    return [i for i in items if isinstance(i, Checkpoint)][-1].cursor


def test_first_run_collects_posts_comments_and_replies(vk: VkServer) -> None:
    items, collection = run(vk)
    found = posts(items)
    assert isinstance(items[0], SourceInfo) and items[0].title == "Заречный: новости и обращения"
    assert sum(p.kind == "post" for p in found.values()) == 6
    assert sum(p.kind == "comment" for p in found.values()) == 3 + 14 + 4
    assert found["-201234567_3_c213"].parent == "-201234567_3_c202"  # reached by branch paging
    assert found["-201234567_3_c202"].deleted
    assert collection.warnings == [] and collection.error is None


def test_official_replies_by_community_account_and_listed_user(vk: VkServer) -> None:
    found = posts(run(vk)[0])
    official = {
        k: p.parent for k, p in found.items() if p.kind == "comment" and p.author_is_official
    }
    assert official == {
        "-201234567_2_c102": "-201234567_2_c101",  # the community itself
        "-201234567_3_c214": "-201234567_3_c201",  # a committee, listed by screen name
        "-201234567_6_c303": "-201234567_6_c302",  # an official listed by id
    }


def test_comments_of_many_posts_go_through_execute(vk: VkServer) -> None:
    run(vk)
    top = vk.methods(inner=False)
    assert top[:3] == ["utils.resolveScreenName", "groups.getById", "wall.get"]
    assert top.count("execute") == 1 and top.count("wall.getComments") == 1  # + one branch page


def test_cursor_after_first_run(vk: VkServer) -> None:
    cursor = last_cursor(run(vk)[0])
    assert cursor["owner_id"] == OWNER and cursor["last_post_id"] == 6
    assert cursor["backlog"] is None
    assert cursor["open"]["3"][1:] == [214, 14]
    assert set(cursor["open"]) == {"1", "2", "3", "4", "5", "6"}


def test_second_run_takes_only_what_is_new(vk: VkServer) -> None:
    cursor = last_cursor(run(vk)[0])
    vk.add_post(OWNER, new_post(7, "Во дворе дома 2 на Речной прорвало трубу."))
    vk.add_comment(OWNER, 2, reply(105, 2, "Опять нет воды!", parent=101))
    vk.add_comment(OWNER, 6, reply(305, 6, "Вывезли, спасибо.", parent=None))
    vk.calls.clear()
    items, collection = run(vk, cursor)
    assert sorted(posts(items)) == ["-201234567_2_c105", "-201234567_6_c305", "-201234567_7"]
    assert posts(items)["-201234567_2_c105"].parent == "-201234567_2_c101"
    cursor = last_cursor(items)
    assert cursor["last_post_id"] == 7 and cursor["open"]["2"][1:] == [105, 4]
    assert collection.warnings == []


def test_pinned_post_does_not_stop_the_scan(vk: VkServer) -> None:
    cursor = last_cursor(run(vk)[0])
    vk.add_post(OWNER, new_post(7, "Новая жалоба под закреплённым постом."))
    items, _ = run(vk, cursor, comments=False)
    assert [p.native_id for p in posts(items).values()] == ["-201234567_7"]


def test_old_posts_leave_the_comments_window(vk: VkServer) -> None:
    cursor = last_cursor(run(vk, comments_window="30m")[0])
    assert cursor["open"] == {}  # every post is older than 30 minutes
    vk.calls.clear()
    run(vk, cursor, comments_window="30m")
    assert "execute" not in vk.methods() and "wall.getComments" not in vk.methods()


def test_max_posts_leaves_a_backlog_that_later_runs_fill(vk: VkServer) -> None:
    first = last_cursor(run(vk, comments=False, max_posts=2)[0])
    assert first["last_post_id"] == 6 and first["backlog"] is None  # history is not backfilled
    for number in range(7, 12):
        vk.add_post(OWNER, new_post(number, f"Жалоба номер {number} про уборку снега."))
    items, collection = run(vk, first, comments=False, max_posts=3)
    assert sorted(posts(items)) == ["-201234567_10", "-201234567_11", "-201234567_9"]
    assert "more than max_posts (3) new posts" in collection.warnings[0]
    second = last_cursor(items)
    assert second["last_post_id"] == 11 and second["backlog"] == [6, 9]
    items, _ = run(vk, second, comments=False, max_posts=3)
    assert sorted(posts(items)) == ["-201234567_7", "-201234567_8"]
    assert last_cursor(items)["backlog"] is None


def run_until_failure(
    vk: VkServer, cursor: dict[str, Any], **options: Any
) -> tuple[list[Any], dict[str, Any] | None]:
    """Collect until the source fails; the posts yielded and the last checkpoint's cursor."""
    source = vk_wall.Options(id="z", type="vk_wall", owner=OWNER, **options)
    collection = Collection(
        source=source, cursor=cursor, retries=0, defaults=Defaults(vk_api_url=vk.url)
    )
    items: list[Any] = []
    with pytest.raises(SourceError, match="HTTP 500"):
        for item in vk_wall.collect(collection):
            items.append(item)
    checkpoints = [i.cursor for i in items if isinstance(i, Checkpoint)]
    return items, checkpoints[-1] if checkpoints else None


def test_a_run_cut_short_loses_nothing(vk: VkServer) -> None:
    cursor = last_cursor(run(vk, comments=False)[0])
    for number in range(7, 157):
        vk.add_post(OWNER, new_post(number, f"Жалоба {number}: не работает фонарь у дома."))
    vk.http_fault("wall.get", status=500, offset=100)  # the second page of posts fails
    items, saved = run_until_failure(vk, cursor, comments=False, max_posts=1000)
    assert len(posts(items)) == 99  # page 1: the old pinned post (skipped), then 156 … 58
    assert saved is not None and saved["last_post_id"] == 156 and saved["backlog"] == [6, 58]
    vk.clear()
    rest, _ = run(vk, saved, comments=False, max_posts=1000)
    got = set(posts(items)) | set(posts(rest))
    assert got == {f"{OWNER}_{n}" for n in range(7, 157)}
    assert last_cursor(rest) == {**saved, "backlog": None, "open": last_cursor(rest)["open"]}


def test_a_first_run_cut_short_starts_again(vk: VkServer) -> None:
    for number in range(7, 157):
        vk.add_post(OWNER, new_post(number, f"Жалоба {number}: не работает фонарь у дома."))
    vk.http_fault("wall.get", status=500, offset=100)
    items, saved = run_until_failure(vk, {}, comments=False, max_posts=1000)
    assert len(posts(items)) == 100 and saved == {}  # the pinned post, then 156 … 58


def test_closed_comments_of_one_post_are_a_warning(vk: VkServer) -> None:
    vk.fail("wall.getComments", 212, post_id=3)
    items, collection = run(vk)
    found = posts(items)
    assert not any(k.startswith("-201234567_3_c") for k in found)
    assert "-201234567_2_c101" in found
    assert collection.warnings == [
        "comments of post -201234567_3 unavailable: comments are closed "
        "(VK error 212: Access to post comments denied)"
    ]
    assert "3" not in last_cursor(items)["open"]


@pytest.mark.parametrize("code", [15, 18, 30, 203])
def test_unreadable_wall_is_gone(vk: VkServer, code: int) -> None:
    vk.fail("wall.get", code)
    with pytest.raises(SourceError) as caught:
        run(vk)
    assert caught.value.gone
    assert str(caught.value).startswith("wall https://vk.com/zarechny_news unavailable: ")
    assert f"(VK error {code}: " in str(caught.value)


def test_unknown_screen_name_is_gone(vk: VkServer) -> None:
    with pytest.raises(SourceError, match=r"VK has no page named 'no_such_town'") as caught:
        run(vk, owner="no_such_town")
    assert caught.value.gone


def test_owner_page_unavailable_is_gone(vk: VkServer) -> None:
    vk.fail("utils.resolveScreenName", 18)
    with pytest.raises(SourceError) as caught:
        run(vk)
    assert caught.value.gone
    assert str(caught.value) == (
        "zarechny_news unavailable: the page was deleted or banned "
        "(VK error 18: User was deleted or banned)"
    )


def test_deleted_community_is_gone(vk: VkServer) -> None:
    vk.groups[201234567]["deactivated"] = "deleted"
    with pytest.raises(SourceError, match=r"^community club201234567 is deleted on VK$"):
        run(vk, owner=-201234567)


def test_owner_forms_are_validated() -> None:
    make = vk_wall.Options.model_validate
    assert make({"id": "a", "type": "vk_wall", "owner": "https://vk.com/club5"}).owner == "club5"
    assert make({"id": "a", "type": "vk_wall", "owner": "-61006621"}).owner == -61006621
    with pytest.raises(ValueError, match="numeric id or a VK screen name"):
        make({"id": "a", "type": "vk_wall", "owner": "vk.com/a b"})
    with pytest.raises(ValueError, match="expected the name of an environment variable") as bad:
        make({"id": "a", "type": "vk_wall", "owner": 1, "token_env": "vk1.a.abc"})
    assert "vk1.a.abc" not in str(bad.value).split("input_value")[0]


# -- vk_search -----------------------------------------------------------------------------------
def search(vk: VkServer, cursor: dict[str, Any] | None = None, **options: Any) -> tuple[list, Any]:
    source = vk_search.Options(id="s", type="vk_search", **{"query": "мусор", **options})
    collection = Collection(
        source=source, cursor=cursor or {}, retries=0, defaults=Defaults(vk_api_url=vk.url)
    )
    return list(vk_search.collect(collection)), collection


def found_items(count: int, start: float) -> list[dict[str, Any]]:
    return [
        {
            "id": n,
            "owner_id": -(300 + n % 7),
            "from_id": 700000100 + n,
            "date": int(start) - n * 10,
            "text": f"Мусор не вывозят на улице номер {n}",
            "post_type": "post",
        }
        for n in range(1, count + 1)
    ]


def test_search_pages_with_next_from_and_moves_the_cursor(vk: VkServer) -> None:
    vk.search_items.extend(found_items(450, NOW - 60))
    items, collection = search(vk)
    assert len(posts(items)) == 450
    assert [c.params.get("start_from") for c in vk.calls] == [None, "200/-1_0", "400/-1_0"]
    assert last_cursor(items)["newest"] == int(NOW - 60) - 10
    assert collection.warnings == []
    vk.search_items.extend(
        [{**found_items(1, NOW)[0], "id": 9999, "date": int(NOW) - 1, "owner_id": -5}]
    )
    again, _ = search(vk, last_cursor(items))
    assert "-5_9999" in posts(again)


def test_search_cap_of_1000_is_a_warning(vk: VkServer) -> None:
    vk.search_items.extend(found_items(1100, NOW - 60))
    items, collection = search(vk, start_time="2d")
    assert len(posts(items)) == 1000
    assert collection.warnings == [
        "1100 posts match 'мусор' since the last run; VK returns only the first 1000: "
        "run this source more often or narrow the query"
    ]


def test_search_geo_needs_both_coordinates() -> None:
    with pytest.raises(ValueError, match="give both latitude and longitude"):
        vk_search.Options(id="s", type="vk_search", query="вода", latitude=56.2)


# -- helpers -------------------------------------------------------------------------------------
def new_post(number: int, text: str) -> dict[str, Any]:
    return {
        "id": number,
        "from_id": 700000050,
        "owner_id": OWNER,
        "date": int(time.time()) - 60,
        "marked_as_ads": 0,
        "post_type": "post",
        "text": text,
        "comments": {"count": 0, "can_post": 1},
        "likes": {"count": 0},
        "reposts": {"count": 0},
        "views": {"count": 10},
    }


def reply(number: int, post: int, text: str, parent: int | None) -> dict[str, Any]:
    return {
        "id": number,
        "from_id": 700000051,
        "post_id": post,
        "owner_id": OWNER,
        "parents_stack": [parent] if parent else [],
        "date": int(time.time()) - 30,
        "text": text,
    }


def test_search_sends_the_geo_filter_and_stops_at_max_posts(vk: VkServer) -> None:
    vk.search_items.extend(
        {**item, "geo": {"type": "point", "coordinates": "56.2 93.5"}}
        for item in found_items(300, NOW - 60)
    )
    items, collection = search(vk, latitude=56.2, longitude=93.5, max_posts=250)
    assert len(posts(items)) == 250
    first = vk.calls[0].params
    assert (first["latitude"], first["longitude"], first["q"]) == ("56.2", "93.5", "мусор")
    assert collection.warnings == ["max_posts (250) reached: older matches of this run skipped"]
    assert posts(items)["-301_1"].geo == {"lat": 56.2, "lon": 93.5}
