"""ok_group in process against the local OK server (every request's signature checked): what a
run yields, the cursor, incremental comments, paging, official answers, and every error path."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from crawler.config import Defaults
from crawler.model import Checkpoint, Post, SourceError, SourceInfo
from spiders import ok_group
from spiders.base import Collection
from spiders.ok_client import signature
from tests.conftest import FIXTURES
from tests.ok_server import APP_KEY, APP_SECRET, TOKEN, OkServer, expected_sig, load_group

GID = "70000001234567"
NOW = time.time()


@pytest.fixture
def ok(monkeypatch: pytest.MonkeyPatch) -> Iterator[OkServer]:
    monkeypatch.setenv("OK_APP_KEY", APP_KEY)
    monkeypatch.setenv("OK_APP_SECRET_KEY", APP_SECRET)
    monkeypatch.setenv("OK_ACCESS_TOKEN", TOKEN)
    with OkServer() as server:
        server.add_group(load_group(FIXTURES / "ok" / "zarechny_group.json", newest=NOW - 3600))
        yield server


def run(
    ok: OkServer, cursor: dict[str, Any] | None = None, backoff: str = "0s", **options: Any
) -> tuple[list[Any], Collection]:
    source = ok_group.Options(
        id="zarechny-ok", type="ok_group", **{"group": "zarechny_adm", **options}
    )
    collection = Collection(
        source=source,
        cursor=cursor or {},
        retries=1,
        defaults=Defaults(ok_api_url=ok.url, retry_backoff=backoff),
        official_accounts={"ok": ["https://ok.ru/profile/571000000099"]},
    )
    return list(ok_group.collect(collection)), collection


def posts(items: list[Any]) -> dict[str, Post]:
    return {i.native_id: i for i in items if isinstance(i, Post)}


def last_cursor(items: list[Any]) -> dict[str, Any]:
    return [i for i in items if isinstance(i, Checkpoint)][-1].cursor


def key(topic: int, comment: str | None = None) -> str:
    base = f"{GID}_1550100000000{topic:02d}"
    return f"{base}_c{comment}" if comment else base


def test_first_run_collects_topics_and_comments(ok: OkServer) -> None:
    items, collection = run(ok)
    found = posts(items)
    assert items[0] == SourceInfo(
        title="Заречный район: администрация", url="https://ok.ru/zarechny_adm"
    )
    assert sum(p.kind == "post" for p in found.values()) == 6
    assert sum(p.kind == "comment" for p in found.values()) == 7
    assert found[key(3)].url == f"https://ok.ru/group/{GID}/topic/155010000000003"
    assert found[key(3)].author_name == "Иван Сидоров"
    assert found[key(3, "MjAwMg")].deleted and found[key(3, "MjAwMg")].raw["deleted"]
    assert collection.warnings == [] and collection.error is None


def test_every_request_is_signed(ok: OkServer) -> None:
    run(ok)
    assert ok.methods()[:4] == [
        "url.getInfo",
        "group.getInfo",
        "group.getStatTopics",
        "mediatopic.getByIds",  # the six topics' content in one call
    ]
    assert all(call.signed for call in ok.calls) and {c.token for c in ok.calls} == {TOKEN}


def test_signature_is_the_documented_md5() -> None:
    params = {"method": "group.getInfo", "uids": "1", "application_key": "K", "format": "json"}
    session = hashlib.md5(b"toksec").hexdigest()  # md5(access_token + secret key)
    body = "application_key=Kformat=jsonmethod=group.getInfouids=1" + session
    assert (
        signature({**params, "access_token": "tok"}, session)
        == hashlib.md5(body.encode()).hexdigest()
    )
    assert expected_sig({**params, "access_token": "tok"}, "tok", "sec") == signature(
        params, session
    )


def test_official_answers_by_the_group_and_a_listed_user(ok: OkServer) -> None:
    found = posts(run(ok)[0])
    official = {
        k: p.parent for k, p in found.items() if p.kind == "comment" and p.author_is_official
    }
    assert official == {
        key(2, "MTAwMg"): key(2),  # the group itself answers the topic
        key(3, "MjAwMw"): key(3, "MjAwMQ"),  # a listed official answers a resident's comment
        key(6, "MzAwMQ"): key(6),
    }
    assert found[key(2, "MTAwMw")].parent == key(2, "MTAwMg")  # a reply to the answer


def test_reshare_place_metrics_and_moscow_dates(ok: OkServer) -> None:
    found = posts(run(ok)[0])
    reshare = found[key(4)]
    assert reshare.repost_of == "70000009999999_155099000000777"
    assert reshare.text.startswith("В Заречном открыли новый пункт")
    assert found[key(2)].geo == {"lat": 56.2011, "lon": 93.512}
    assert found[key(2)].metrics == {"likes": 7, "reposts": 1, "comments": 3, "views": 210}
    assert found[key(3)].raw["attachments"] == [{"type": "photo", "photos": 2}]
    by_date = found[key(2, "MTAwMw")].published_at  # only "date", Moscow time
    assert by_date is not None and abs(by_date.timestamp() - (NOW - 3600 - 2 * 3600)) < 1


def test_cursor_after_first_run(ok: OkServer) -> None:
    cursor = last_cursor(run(ok)[0])
    assert cursor["group_id"] == GID and cursor["backlog"] is None
    assert cursor["newest_ms"] == int((NOW - 3600) * 1000)
    assert len(cursor["open"]) == 6
    assert cursor["open"]["155010000000003"][2] == 2  # the removed comment is not counted


def test_second_run_takes_only_what_is_new(ok: OkServer) -> None:
    cursor = last_cursor(run(ok)[0])
    ok.add_topic(new_topic(7, "Во дворе дома 2 на Речной прорвало трубу."))
    ok.add_comment("155010000000003", new_comment("NEW1", "Яму у школы засыпали, спасибо!"))
    ok.calls.clear()
    items, collection = run(ok, cursor)
    # the comment removed before is passed again (marked) when its thread is read again
    assert sorted(posts(items)) == [key(3, "MjAwMg"), key(3, "NEW1"), key(7)]
    # one page of the topic list brings the new topic and the comment counts of the others;
    # only the thread whose count changed is read again
    assert ok.methods() == [
        "url.getInfo",
        "group.getInfo",
        "group.getStatTopics",
        "mediatopic.getByIds",
        "discussions.getComments",
    ]
    assert last_cursor(items)["open"]["155010000000003"][2] == 3
    assert collection.warnings == []


def test_a_comment_removed_later_is_marked(ok: OkServer) -> None:
    cursor = last_cursor(run(ok)[0])
    ok.comments["155010000000002"][0]["deleted"] = True
    found = posts(run(ok, cursor)[0])
    assert list(found) == [key(2, "MTAwMQ")] and found[key(2, "MTAwMQ")].deleted


def test_topics_page_by_anchor_and_max_posts_leaves_a_backlog(ok: OkServer) -> None:
    first = last_cursor(run(ok, comments=False, max_posts=2)[0])
    for number in range(7, 67):
        ok.add_topic(new_topic(number, f"Жалоба номер {number}: не горит фонарь.", age=70 - number))
    items, collection = run(ok, first, comments=False, max_posts=55)
    assert len(posts(items)) == 55
    anchors = [c.params.get("anchor") for c in ok.calls if c.method == "group.getStatTopics"]
    assert anchors[-2] is None and anchors[-1] is not None  # the second page by anchor
    assert "more than max_posts (55) new topics" in collection.warnings[0]
    rest, _ = run(ok, last_cursor(items), comments=False, max_posts=55)
    assert sorted(posts(rest)) == [key(n) for n in range(7, 12)]
    assert last_cursor(rest)["backlog"] is None


def test_comments_page_by_anchor(ok: OkServer) -> None:
    for n in range(150):
        ok.add_comment(
            "155010000000005", new_comment(f"P{n:03d}", f"Комментарий {n}", age=3000 - n)
        )
    found = posts(run(ok)[0])
    assert sum(k.startswith(key(5) + "_c") for k in found) == 150


def test_a_run_cut_short_loses_nothing(ok: OkServer) -> None:
    cursor = last_cursor(run(ok, comments=False)[0])
    for number in range(7, 67):
        ok.add_topic(new_topic(number, f"Обращение {number}", age=70 - number))
    ok.http_fault("group.getStatTopics", status=500, count=50, anchor="b2Zmc2V0OjUw")
    items: list[Any] = []
    with pytest.raises(SourceError, match=r"HTTP 500 from http://127\.0\.0\.1:\d+/fb\.do"):
        for item in ok_group.collect(collection_for(ok, cursor, comments=False, max_posts=1000)):
            items.append(item)
    saved = last_cursor(items)
    assert saved["backlog"] is not None and len(posts(items)) == 50
    ok.clear()
    rest, _ = run(ok, saved, comments=False, max_posts=1000)
    assert set(posts(items)) | set(posts(rest)) == {key(n) for n in range(7, 67)}


# -- errors ------------------------------------------------------------------------------------
def test_rejected_token_names_its_variable_and_never_the_token(ok: OkServer) -> None:
    ok.tokens = {"another-token"}
    with pytest.raises(SourceError) as caught:
        run(ok)
    assert str(caught.value) == (
        "OK access token in $OK_ACCESS_TOKEN rejected (PARAM_SESSION_EXPIRED : Session expired)"
    )
    assert ok.methods() == ["url.getInfo"]  # no retries


def test_wrong_secret_key_is_a_signature_error(
    ok: OkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OK_APP_SECRET_KEY", "not-the-secret-of-this-app")
    with pytest.raises(SourceError, match=r"^OK rejected the request signature \(PARAM_SIGNATURE"):
        run(ok)
    assert not ok.calls[0].signed


def test_missing_credentials_name_the_variables(
    ok: OkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OK_APP_SECRET_KEY")
    monkeypatch.setenv("OK_ACCESS_TOKEN", " ")
    with pytest.raises(
        SourceError, match=r"^no OK credentials: set .*\$OK_APP_SECRET_KEY, \$OK_ACCESS_TOKEN$"
    ):
        run(ok)
    assert ok.calls == []


def test_flood_is_retried_with_a_growing_bounded_pause(ok: OkServer) -> None:
    ok.fail("group.getStatTopics", 8, times=2)
    started = time.monotonic()
    items, collection = run(ok, backoff="0.1s", comments=False)
    assert len(posts(items)) == 6 and collection.error is None
    pauses = [b.time - a.time for a, b in zip(ok.calls[2:4], ok.calls[3:5], strict=True)]
    assert 0.1 <= pauses[0] < 0.2 + 0.1 and 0.2 <= pauses[1] < 0.4 + 0.1  # 0.1 s, then 0.2 s
    assert time.monotonic() - started < 3


def test_endless_flood_gives_up_after_bounded_retries(ok: OkServer) -> None:
    ok.fail("group.getStatTopics", 8)
    with pytest.raises(SourceError) as caught:
        run(ok)
    assert str(caught.value) == (
        "OK keeps refusing group.getStatTopics: error 8 (FLOOD_BLOCKED : Method call blocked "
        "due to flood) after 4 retries"
    )
    assert ok.methods().count("group.getStatTopics") == 5


def test_call_limit_reached_is_one_line(ok: OkServer) -> None:
    ok.fail("group.getStatTopics", 11)
    with pytest.raises(
        SourceError, match=r"^OK's limit of calls of group.getStatTopics is reached"
    ):
        run(ok)


def test_topic_list_refused_names_the_token_variable(ok: OkServer) -> None:
    ok.fail("group.getStatTopics", 10, "PERMISSION_DENIED : No permission for statistics")
    with pytest.raises(SourceError) as caught:
        run(ok)
    assert str(caught.value).startswith(
        "OK refused group.getStatTopics to the account of $OK_ACCESS_TOKEN (OK error 10: "
        "PERMISSION_DENIED : No permission for statistics): it needs"
    )
    assert not caught.value.gone


def test_server_errors_are_retried_then_fail(ok: OkServer) -> None:
    ok.http_fault("group.getInfo", status=502, times=1)
    assert run(ok, comments=False)[1].error is None
    ok.http_fault("group.getInfo", status=503)
    with pytest.raises(
        SourceError, match=r"^HTTP 503 from http://127\.0\.0\.1:\d+/fb\.do \(group\.getInfo\)$"
    ):
        run(ok)
    assert ok.methods().count("group.getInfo") == 2 + 2  # retries=1


def test_closed_group_is_gone(ok: OkServer) -> None:
    ok.groups[GID]["access_type"] = "CLOSED"
    with pytest.raises(SourceError) as caught:
        run(ok)
    assert caught.value.gone
    assert str(caught.value) == (
        "group https://ok.ru/zarechny_adm unavailable: the group is closed "
        "(OK error 455: GROUP_RESTRICTION : Group is closed)"
    )


def test_deleted_group_is_gone(ok: OkServer) -> None:
    ok.groups[GID]["deleted"] = True
    with pytest.raises(
        SourceError, match=rf"^OK has no group {GID} .*closed or deleted$"
    ) as caught:
        run(ok, group=int(GID))
    assert caught.value.gone


def test_unknown_short_address_is_gone(ok: OkServer) -> None:
    with pytest.raises(SourceError) as caught:
        run(ok, group="https://ok.ru/no_such_town")
    assert caught.value.gone and str(caught.value).startswith("ok.ru/no_such_town unavailable")


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("group.getInfo", b"<html>maintenance</html>", "not an OK API answer from http"),
        (
            "group.getStatTopics",
            b'{"media_topics": []}',
            "not an OK API answer to group.getStatTopics for group ",
        ),
        ("mediatopic.getByIds", b"[]", "not an OK API answer to mediatopic.getByIds for group "),
        (
            "discussions.getComments",
            b'{"comments": "none"}',
            "not an OK API answer to discussions.getComments",
        ),
    ],
)
def test_malformed_answer_fails_the_source_with_one_line(
    ok: OkServer, method: str, body: bytes, message: str
) -> None:
    ok.malformed(method, body)
    with pytest.raises(SourceError) as caught:
        run(ok)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert not caught.value.gone


def test_an_empty_page_may_leave_the_list_out(ok: OkServer) -> None:
    ok.malformed("group.getStatTopics", b'{"has_more": false}')
    items, collection = run(ok)
    assert posts(items) == {} and collection.error is None
    assert last_cursor(items)["group_id"] == GID


def test_unreadable_comments_of_one_topic_are_a_warning(ok: OkServer) -> None:
    ok.fail("discussions.getComments", 456, discussionId="155010000000003")
    items, collection = run(ok)
    assert not any(k.startswith(key(3) + "_c") for k in posts(items))
    assert key(2, "MTAwMQ") in posts(items)
    assert collection.warnings == [
        f"comments of topic {GID}_155010000000003 unavailable: the group restricts this "
        "(OK error 456: GROUP_RESTRICTION : Operation is restricted by the group)"
    ]
    assert "155010000000003" not in last_cursor(items)["open"]


def test_options_are_validated() -> None:
    make = ok_group.Options.model_validate
    assert make({"id": "a", "type": "ok_group", "group": "https://ok.ru/group/123"}).group == 123
    assert (
        make({"id": "a", "type": "ok_group", "group": "ok.ru/zarechny_adm"}).group == "zarechny_adm"
    )
    assert make({"id": "a", "type": "ok_group", "group": "53038939046008"}).group == 53038939046008
    with pytest.raises(ValueError, match=r"OK group id or an ok\.ru address"):
        make({"id": "a", "type": "ok_group", "group": "ok.ru/a b"})
    with pytest.raises(ValueError, match="expected the name of an environment variable") as bad:
        make({"id": "a", "type": "ok_group", "group": 1, "token_env": "tkn1.secret-value"})
    assert "tkn1.secret-value" not in str(bad.value).split("input_value")[0]


# -- helpers -------------------------------------------------------------------------------------
def collection_for(ok: OkServer, cursor: dict[str, Any], **options: Any) -> Collection:
    source = ok_group.Options(id="z", type="ok_group", group=int(GID), **options)
    return Collection(source=source, cursor=cursor, retries=0, defaults=Defaults(ok_api_url=ok.url))


def new_topic(number: int, text: str, age: int = 60) -> dict[str, Any]:
    return {
        "id": f"1550100000000{number:02d}",
        "created_ms": int((time.time() - age) * 1000),
        "author_ref": "user:571000000001",
        "owner_ref": f"group:{GID}",
        "media": [{"type": "text", "text": text}],
    }


def new_comment(number: str, text: str, age: int = 30) -> dict[str, Any]:
    return {
        "id": number,
        "author_id": "571000000002",
        "text": text,
        "created_ms": int((time.time() - age) * 1000),
    }


def test_every_env_option_is_a_secret_to_redact(write_sources: Any) -> None:
    from crawler.config import load_config, secret_variables

    path = write_sources("""
        sources:
          - id: ok-a
            type: ok_group
            group: 123
            app_key_env: REGION_OK_APP
            secret_key_env: REGION_OK_SECRET
            token_env: REGION_OK_ACCESS
        """)
    names = secret_variables(load_config(path))
    assert {"REGION_OK_APP", "REGION_OK_SECRET", "REGION_OK_ACCESS"} <= set(names)
