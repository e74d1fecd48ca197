"""Telegram messages → Posts on real Telethon objects, one field per test; and the options."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from telethon.tl import types

from spiders.telegram import Options
from spiders.telegram_mapping import (
    ChannelRef,
    Thread,
    channel_post,
    comment_post,
    is_official,
    media_kind,
    repost_of,
)
from tests.telegram_fakes import (
    CHANNEL_ID,
    GROUP_ID,
    PRESS_ID,
    channel_entity,
    comment,
    photo_media,
    post,
    reactions,
    user,
    video_media,
)

WHEN = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)
ADM = ChannelRef.from_entity(channel_entity())
THREAD = Thread(ADM, post_id=114, group_id=GROUP_ID)
PEOPLE = {
    501: user(501, "Ольга", "К.", "olga_k"),
    PRESS_ID: user(PRESS_ID, "Пресс", None, "Press_N"),
}


def lookup(message: object, peer: object) -> object:
    return PEOPLE.get(getattr(peer, "user_id", None))  # type: ignore[arg-type]


# -- channel posts -------------------------------------------------------------------------------
@pytest.fixture
def single() -> types.Message:
    return post(
        114,
        WHEN,
        "Приём граждан по вопросам ЖКХ перенесён на четверг.",
        views=800,
        forwards=12,
        comments=5,
        max_comment=2011,
        reactions=reactions(like=40, angry=7),
        edit_date=WHEN + timedelta(hours=1),
        post_author="Иванова А.",
    )


def test_native_id_is_the_lowercased_username_and_message_id(single: types.Message) -> None:
    assert channel_post([single], ADM).native_id == "adm_gorod_n/114"


def test_channel_without_username_uses_its_id() -> None:
    ref = ChannelRef.from_entity(channel_entity(username=None))
    made = channel_post([post(7, WHEN, "Текст")], ref)
    assert made.native_id == f"{CHANNEL_ID}/7"
    assert made.url == f"https://t.me/c/{CHANNEL_ID}/7"


def test_collectible_username_when_the_main_one_is_absent() -> None:
    entity = channel_entity(username=None)
    entity.usernames = [
        types.Username(username="Old_Name", active=False),
        types.Username(username="Gorod_N_Official", active=True),
    ]
    assert ChannelRef.from_entity(entity).prefix == "gorod_n_official"


def test_url_keeps_the_username_case(single: types.Message) -> None:
    assert channel_post([single], ADM).url == "https://t.me/Adm_Gorod_N/114"


def test_text_time_and_kind(single: types.Message) -> None:
    made = channel_post([single], ADM)
    assert made.text == "Приём граждан по вопросам ЖКХ перенесён на четверг."
    assert (made.platform, made.kind, made.parent) == ("telegram", "post", None)
    assert made.published_at == WHEN


def test_edit_date_is_edited_at(single: types.Message) -> None:
    assert channel_post([single], ADM).edited_at == WHEN + timedelta(hours=1)


def test_hidden_edit_is_not_an_edit(single: types.Message) -> None:
    single.edit_hide = True
    assert channel_post([single], ADM).edited_at is None


def test_metrics(single: types.Message) -> None:
    assert channel_post([single], ADM).metrics == {
        "views": 800,
        "reposts": 12,
        "reactions": 47,
        "comments": 5,
    }


def test_metrics_absent_when_telegram_sends_none() -> None:
    bare = post(5, WHEN, "Текст", views=None, forwards=None, comments=None)
    assert channel_post([bare], ADM).metrics == {}


def test_signature_is_the_author_name(single: types.Message) -> None:
    made = channel_post([single], ADM)
    assert (made.author_id, made.author_name) == (str(CHANNEL_ID), "Иванова А.")
    unsigned = channel_post([post(5, WHEN, "Текст")], ADM)
    assert unsigned.author_name == "Администрация г. N"


def test_official_flag_passes_through(single: types.Message) -> None:
    assert channel_post([single], ADM, official=True).author_is_official
    assert not channel_post([single], ADM).author_is_official


def test_raw_is_json_and_has_the_facts(single: types.Message) -> None:
    raw = channel_post([single], ADM).raw
    text = json.dumps(raw, ensure_ascii=False)
    assert json.loads(text)["reactions"] == {"👍": 40, "😡": 7}
    assert raw["replies"] == {"count": 5, "comments": True, "channel_id": GROUP_ID, "max_id": 2011}
    assert raw["post_author"] == "Иванова А."


# -- albums --------------------------------------------------------------------------------------
@pytest.fixture
def album() -> list[types.Message]:
    return [
        post(110, WHEN, "", grouped_id=9, media=photo_media(1), views=300, comments=3),
        post(111, WHEN, "Сквер на Садовой.", grouped_id=9, media=photo_media(2), views=310),
        post(112, WHEN, "", grouped_id=9, media=video_media(3), views=None),
    ]


def test_album_is_one_post_under_the_first_id(album: list[types.Message]) -> None:
    assert channel_post(album, ADM).native_id == "adm_gorod_n/110"


def test_album_text_is_the_caption_that_has_text(album: list[types.Message]) -> None:
    assert channel_post(album, ADM).text == "Сквер на Садовой."


def test_album_media_summarised(album: list[types.Message]) -> None:
    raw = channel_post(album, ADM).raw
    assert raw["media"] == ["photo", "photo", "video"]
    assert (raw["ids"], raw["grouped_id"]) == ([110, 111, 112], 9)


def test_album_metrics_take_the_largest(album: list[types.Message]) -> None:
    assert channel_post(album, ADM).metrics["views"] == 310


def test_media_kinds() -> None:
    audio = types.MessageMediaDocument(
        document=types.Document(
            id=1,
            access_hash=1,
            file_reference=b"",
            date=WHEN,
            mime_type="audio/ogg",
            size=1,
            dc_id=2,
            attributes=[],
        ),
        voice=True,
    )
    poll = types.MessageMediaGeo(geo=types.GeoPoint(long=37.6, lat=55.7, access_hash=0))
    assert [media_kind(m) for m in (audio, poll, None, types.MessageMediaEmpty())] == [
        "audio",
        "geo",
        None,
        None,
    ]


def test_geo_point() -> None:
    geo = types.MessageMediaGeo(geo=types.GeoPoint(long=37.6, lat=55.7, access_hash=0))
    assert channel_post([post(3, WHEN, "Яма тут", media=geo)], ADM).geo == {
        "lat": 55.7,
        "lon": 37.6,
    }


# -- forwards ------------------------------------------------------------------------------------
def test_forward_from_a_channel_without_its_entity() -> None:
    fwd = types.MessageFwdHeader(date=WHEN, from_id=types.PeerChannel(1400900800), channel_post=451)
    assert repost_of(fwd) == "1400900800/451"


def test_forward_from_a_channel_with_its_entity() -> None:
    fwd = types.MessageFwdHeader(date=WHEN, from_id=types.PeerChannel(1400900800), channel_post=451)
    mchs = channel_entity(1400900800, "MCHS_N", "МЧС")
    assert repost_of(fwd, lambda m, p: mchs) == "mchs_n/451"


def test_forward_from_a_hidden_user_gives_the_name() -> None:
    fwd = types.MessageFwdHeader(date=WHEN, from_name="Житель Заречного района")
    assert repost_of(fwd) == "Житель Заречного района"


def test_forward_from_a_user() -> None:
    fwd = types.MessageFwdHeader(date=WHEN, from_id=types.PeerUser(501))
    assert repost_of(fwd, lookup) == "olga_k"
    assert repost_of(fwd) == "501"


def test_not_a_forward() -> None:
    assert channel_post([post(3, WHEN, "Текст")], ADM).repost_of is None


# -- comments ------------------------------------------------------------------------------------
def test_top_level_comment_answers_the_post() -> None:
    made = comment_post(comment(2010, WHEN, "Когда?", to=1910, sender=types.PeerUser(501)), THREAD)
    assert (made.native_id, made.kind, made.parent) == (
        f"{GROUP_ID}/2010",
        "comment",
        "adm_gorod_n/114",
    )


def test_reply_to_a_comment_answers_that_comment() -> None:
    reply = comment(2011, WHEN, "Ответ", to=2010, top=1910, sender=types.PeerUser(502))
    assert comment_post(reply, THREAD).parent == f"{GROUP_ID}/2010"


def test_comment_author_from_the_lookup() -> None:
    made = comment_post(
        comment(2010, WHEN, "Когда?", to=1910, sender=types.PeerUser(501)), THREAD, lookup=lookup
    )
    assert (made.author_id, made.author_name) == ("501", "Ольга К.")
    assert made.url == "https://t.me/Adm_Gorod_N/114?comment=2010"


@pytest.mark.parametrize(
    ("sender", "officials", "expected"),
    [
        (types.PeerChannel(CHANNEL_ID), [], True),  # the channel itself
        (types.PeerChannel(GROUP_ID), [], True),  # an anonymous admin of the group
        (types.PeerUser(PRESS_ID), [PRESS_ID], True),  # listed by id
        (types.PeerUser(PRESS_ID), [str(PRESS_ID)], True),  # id written as a string
        (types.PeerUser(PRESS_ID), ["@press_n"], True),  # listed by username, any case
        (types.PeerUser(501), [PRESS_ID, "press_n"], False),
        (types.PeerChannel(1400900800), [], False),  # another channel commenting
    ],
)
def test_official_answers(sender: object, officials: list, expected: bool) -> None:
    message = comment(2011, WHEN, "Ответ", to=2010, top=1910, sender=sender)
    assert is_official(message, THREAD, officials, lookup) is expected


def test_comment_by_the_channel_is_authored_by_it() -> None:
    message = comment(2011, WHEN, "Ответ", to=2010, top=1910, sender=types.PeerChannel(CHANNEL_ID))
    made = comment_post(message, THREAD)
    assert (made.author_id, made.author_name, made.author_is_official) == (
        str(CHANNEL_ID),
        "Администрация г. N",
        True,
    )
    assert made.raw["group_id"] == GROUP_ID


# -- options -------------------------------------------------------------------------------------
def options(**values: object) -> Options:
    return Options(id="adm-n", type="telegram", **values)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Adm_Gorod_N", "Adm_Gorod_N"),
        ("@Adm_Gorod_N", "Adm_Gorod_N"),
        ("https://t.me/Adm_Gorod_N", "Adm_Gorod_N"),
        ("t.me/s/Adm_Gorod_N/", "Adm_Gorod_N"),
        ("-1001500100200", -1001500100200),
        (1500100200, 1500100200),
    ],
)
def test_channel_forms(given: object, expected: object) -> None:
    assert options(channel=given).channel == expected


def test_defaults() -> None:
    made = options(channel="adm_gorod_n")
    assert made.comments is True
    assert made.comments_window == timedelta(days=3)
    assert made.max_messages == 500
    assert made.flood_wait_limit == timedelta(seconds=60)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"channel": "a b"}, "is not a channel username"),
        ({"channel": "x"}, "is not a channel username"),
        ({"channel": "gorod_n", "comments_window": 3}, "3 has no unit: write 3s, 3m or 3h"),
        ({"channel": "gorod_n", "flood_wait_limit": "soon"}, "is not a duration"),
        ({"channel": "gorod_n", "max_messages": 0}, "greater than or equal to 1"),
        ({"channel": "gorod_n", "api_hash": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_options(values: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        options(**values)
