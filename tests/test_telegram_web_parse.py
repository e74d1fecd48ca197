"""parse_page on the real t.me/s/xCareers page (read in place) and on made-up fixture pages.

The real page's oracle is its own HTML read with regular expressions, independently of the
parser. The made-up pages in tests/fixtures/telegram_web/ copy its markup (same classes and
nesting) for made-up channels and add what the real page lacks: albums, forwards (from a
channel's post, a profile, a hidden account), signatures, replies, polls, documents, audio
files, voice messages, round videos, locations, Russian interface words, an empty channel and
the page t.me shows for a channel without a web preview. The markup of round videos, voice
messages and audio files follows public captures of t.me/s pages (an audio file: the real
``tchantest/12`` page in the tchan project's tests).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from crawler.model import Post
from spiders.telegram_web import Options, normalise_channel
from spiders.telegram_web_page import ParsedPage, parse_page, parse_views, post_key
from tests.conftest import FIXTURES, shared

CASES = FIXTURES / "telegram_web"
CITY = "verhneozersk_live"
CITY_URL = f"https://t.me/s/{CITY}"


# -- the real page -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_html() -> str:
    return shared("fixtures/tme_s_xCareers.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def real(real_html: str) -> ParsedPage:
    return parse_page(real_html.encode(), "https://t.me/s/xCareers?before=1512", "xCareers")


@pytest.fixture(scope="module")
def real_by_id(real: ParsedPage) -> dict[str, Post]:
    return {p.native_id: p for p in real.posts}


ZIMAD = (
    "https://zimad.com/ru/careers/aso-specialist-kazan-minsk-ulyanovsk-kharkov-gomel-obninsk-"
    "kaluga-st-petersburg-moscow/?utm_source=telegram&utm_medium=social&utm_campaign=aso-specialist"
)
REAL_IDS = [1491, 1492, 1493, 1494, 1495, *range(1497, 1502), *range(1503, 1512)]
REAL_VIEWS = ["4.4K", "4.4K", "4.8K", "6.2K", "5.3K", "5.6K", "5.2K", "5.6K", "5.6K", "5.4K"]
REAL_VIEWS += ["5.0K", "5.2K", "5.6K", "5.5K", "5.3K", "4.1K", "3.5K", "4.1K", "1.5K"]


def test_real_page_shape(real: ParsedPage, real_html: str) -> None:
    assert real.has_history and not real.empty and not real.truncated
    assert real.problems == []
    assert real_html.count('class="tgme_widget_message_wrap js-widget_message_wrap"') == 20
    assert real.service == 1  # xCareers/1502 "pinned" is skipped
    assert real.ids == sorted([*REAL_IDS, 1502])


def test_real_native_ids_are_the_data_post_values_in_lower_case(
    real: ParsedPage, real_html: str
) -> None:
    in_page = re.findall(r'data-post="([^"]+)"', real_html)
    expected = [d.lower() for d in in_page if d != "xCareers/1502"]
    assert [p.native_id for p in real.posts] == expected  # as the telegram type keys them
    assert [p.native_id for p in real.posts] == [f"xcareers/{n}" for n in REAL_IDS]


def test_real_title_and_paging(real: ParsedPage) -> None:
    assert real.title == "xCareers: Digital Jobs"
    assert real.before == 1491
    assert (real.oldest, real.newest) == (1491, 1511)


def test_real_platform_kind_author(real: ParsedPage) -> None:
    assert {(p.platform, p.kind) for p in real.posts} == {("telegram", "post")}
    assert {p.author_id for p in real.posts} == {"xCareers"}
    assert {p.author_name for p in real.posts} == {"xCareers: Digital Jobs"}
    assert {p.repost_of for p in real.posts} == {None}


def test_real_urls(real: ParsedPage) -> None:
    assert [p.url for p in real.posts] == [f"https://t.me/xCareers/{n}" for n in REAL_IDS]


def test_real_published_at(real: ParsedPage, real_html: str) -> None:
    stamps = re.findall(r'<time datetime="([^"]+)"', real_html)
    stamps.pop(10)  # the service message's
    assert [p.published_at for p in real.posts] == [datetime.fromisoformat(s) for s in stamps]
    assert real.posts[0].published_at == datetime(2020, 4, 30, 17, 0, 4, tzinfo=UTC)
    assert real.posts[-1].published_at == datetime(2020, 5, 4, 7, 0, 2, tzinfo=UTC)


def test_real_views(real: ParsedPage, real_html: str) -> None:
    assert re.findall(r'tgme_widget_message_views">([^<]+)<', real_html) == REAL_VIEWS
    assert [p.metrics for p in real.posts] == [
        {"views": round(float(v[:-1]) * 1000)} for v in REAL_VIEWS
    ]
    assert [p.raw["views"] for p in real.posts] == REAL_VIEWS


def test_real_edited_flag(real: ParsedPage, real_html: str) -> None:
    edited = re.findall(
        r'meta">edited &nbsp;<a class="tgme_widget_message_date" href="[^"]+/(\d+)"', real_html
    )
    assert edited == ["1492", "1494", "1501"]
    assert [p.native_id for p in real.posts if p.raw.get("edited")] == [
        f"xcareers/{n}" for n in edited
    ]
    assert all(p.edited_at is None for p in real.posts)  # the spider decides the time


def test_real_text_first_post(real_by_id: dict[str, Post]) -> None:
    text = real_by_id["xcareers/1491"].text
    assert text.startswith(
        "РАЗРАБОТЧИК IOS 🔥\n\n"
        "Формат: #удаленка (на время карантина) потом #офис\n"
        "Локация: #москва, #санкт_петербург, #россия\n"
        "Занятость: Полная\n"
        "Опыт: от 3 до 6 лет\n"
    )
    assert text.endswith("Откликнуться: @Levelller\n\n#разработка #ios")
    assert "<" not in text and "&nbsp;" not in text


def test_real_text_whole_post(real_by_id: dict[str, Post]) -> None:
    assert real_by_id["xcareers/1509"].text == (
        "Ура! Вы выиграли!!\n\n"
        "Да-да, именно такое сообщение вы можете получить уже в этот вторник.\n\n"
        "Ведь прямо сейчас у нас проходит конкурс: троим победителям мы оплатим любой курс "
        "стоимостью до 17 000 руб.\n\n"
        "Все условия конкурса вот тут — https://t.me/xCareers/1501. Обязательно проверьте, "
        "нажалась ли кнопка и ждите итогов 5-ого мая, в том же посте. Не пропустите!"
    )


def test_real_text_entities_and_hidden_link(real_by_id: dict[str, Post]) -> None:
    assert "LINUX SPECIALIST | NODES & MASTERNODES OPERATOR\n" in real_by_id["xcareers/1497"].text
    # A zero-width link opens 1503: it leaves no trace in the text.
    assert real_by_id["xcareers/1503"].text.startswith("Marketing jobs — канал с вакансиями")


def test_real_media(real_by_id: dict[str, Post]) -> None:
    photo = real_by_id["xcareers/1501"].raw["media"]
    assert [m["kind"] for m in photo] == ["photo"]
    assert photo[0]["image"].startswith("https://cdn4.telesco.pe/file/Q2H1sEfhxApHUSJx")
    assert photo[0]["href"] == "https://t.me/xCareers/1501"
    video = real_by_id["xcareers/1508"].raw["media"]
    assert [m["kind"] for m in video] == ["video"]
    assert video[0]["image"].startswith("https://cdn4.telesco.pe/file/WuuvdfImkdoGX")
    assert real_by_id["xcareers/1503"].raw["link_preview"] == {
        "url": "http://chnly.pro/file/213d13d73f3e46e08546878c9d3a205f"
    }
    with_media = {p for p, post in real_by_id.items() if "media" in post.raw}
    assert with_media == {"xcareers/1501", "xcareers/1508"}


def _message_chunks(real_html: str) -> dict[str, str]:
    """Each message's HTML by its key, cut with plain string operations (not the parser)."""
    chunks = real_html.split('class="tgme_widget_message_wrap js-widget_message_wrap"')[1:]
    return {c.split('data-post="', 1)[1].split('"', 1)[0].lower(): c for c in chunks}


def _strings(value: object) -> set[str]:
    if isinstance(value, dict):
        return set().union(*map(_strings, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(_strings, value)) if value else set()
    return {value} if isinstance(value, str) else set()


def test_real_links_keep_their_addresses(real_by_id: dict[str, Post], real_html: str) -> None:
    """Every link of a message's text, as shown and where it goes (hashtag searches aside)."""
    for key, chunk in _message_chunks(real_html).items():
        if key not in real_by_id:
            continue  # the service message
        (text,) = re.findall(r'js-message_text" dir="auto">(.*?)</div>', chunk, re.S)
        hrefs = [html.unescape(h) for h in re.findall(r'<a href="([^"]*)"', text)]
        expected = [h for h in hrefs if not h.startswith("?q=")]
        links = real_by_id[key].raw.get("links", [])
        assert [link["url"] for link in links] == expected, key
    assert {"text": "Полное описание вакансии", "url": ZIMAD} in real_by_id["xcareers/1495"].raw[
        "links"
    ]
    assert real_by_id["xcareers/1495"].raw["links"][0] == {
        "text": "",  # the zero-width link that opens the link preview
        "url": "http://chnly.pro/file/cf505ef9a0ef41d58507cb544ecb0478",
    }


def test_real_inline_buttons(real_by_id: dict[str, Post], real_html: str) -> None:
    pattern = r'<a class="tgme_widget_message_inline_button[^"]*" href="([^"]*)"'
    for key, chunk in _message_chunks(real_html).items():
        if key in real_by_id:
            buttons = real_by_id[key].raw.get("buttons", [])
            assert [b["url"] for b in buttons] == re.findall(pattern, chunk), key
    assert real_by_id["xcareers/1497"].raw["buttons"] == [
        {"text": "🛎️ Разместить вакансию", "url": "https://xcareers.me/job/"},
        {"text": "🗂 Разместить резюме", "url": "https://t.me/xCareersChat"},
    ]


def test_real_page_loses_no_address(real_by_id: dict[str, Post], real_html: str) -> None:
    """Every address a message links (but hashtag searches and the channel's own page) is
    somewhere in its stored post: 73 links, 39 addresses; 44 links were lost before."""
    links = 0
    for key, chunk in _message_chunks(real_html).items():
        if key not in real_by_id:
            continue
        post = real_by_id[key]
        stored = _strings(post.raw) | {post.url}
        for href in map(html.unescape, re.findall(r'<a\b[^>]*\bhref="([^"]*)"', chunk)):
            if href.startswith("?q=") or href == "https://t.me/xCareers":
                continue
            links += 1
            assert href in stored, (key, href)
    assert links == 73


# -- made-up city channel: the newest page ---------------------------------------------------------
def parse_case(name: str, url: str = CITY_URL, channel: str = CITY) -> ParsedPage:
    return parse_page((CASES / f"{name}.html").read_bytes(), url, channel)


@pytest.fixture(scope="module")
def newest() -> ParsedPage:
    return parse_case("page_newest")


@pytest.fixture(scope="module")
def by_id(newest: ParsedPage) -> dict[int, Post]:
    older = parse_case("page_before_141", f"{CITY_URL}?before=141")
    return {int(p.native_id.split("/")[1]): p for p in [*newest.posts, *older.posts]}


def test_city_page_ids_title_and_more_link(newest: ParsedPage) -> None:
    assert newest.title == "Верхнеозёрск: жалобы и новости"
    assert [p.native_id for p in newest.posts] == [
        f"{CITY}/{n}" for n in (141, 143, 146, 147, 148, 149, 150, 151, 152)
    ]
    assert newest.ids == [141, 142, 143, 146, 147, 148, 149, 150, 151, 152]
    assert newest.before == 141
    assert newest.service == 1
    assert not newest.truncated and not newest.empty and newest.problems == []


def test_older_pages_ignore_the_after_link() -> None:
    middle = parse_case("page_before_141", f"{CITY_URL}?before=141")
    assert middle.before == 130  # data-after="140" at the bottom is not the way back
    first = parse_case("page_before_130", f"{CITY_URL}?before=130")
    assert first.before is None  # the start of the channel
    assert [p.native_id for p in first.posts] == [f"{CITY}/{n}" for n in (102, 105, 118)]
    assert first.service == 1  # "Channel created"


def test_text_keeps_line_breaks(by_id: dict[int, Post]) -> None:
    assert by_id[141].text == (
        "Доброе утро, Верхнеозёрск!\nСегодня в городе −12°, на дорогах гололёд. Будьте осторожны."
    )
    assert by_id[134].text == (
        "Мусорные баки у школы №3 переполнены пятый день.\n\n"
        "Фото в комментариях не прикрепить — пишите в бот."
    )


def test_text_links_emoji_and_tg_emoji(by_id: dict[int, Post]) -> None:
    assert by_id[149].text == (
        "Гололёд на тротуарах улицы Мира так и не посыпали 😡\n"
        "Спасибо дворникам двора на Мира, 5 — у них чисто 👍\n\n#гололёд #жалоба"
    )
    assert by_id[148].text.endswith("Полный ответ — на сайте администрации.")
    assert by_id[146].text.startswith("⚠️ Внимание! 2 марта с 9:00 до 18:00")
    assert by_id[138].text.startswith("Поликлиника №1 переходит")  # zero-width link dropped
    assert by_id[140].text.endswith("восстановят к 23:00.")


def test_reply_quote_is_not_the_text(by_id: dict[int, Post]) -> None:
    assert by_id[149].raw["reply_to"] == f"{CITY}/141"
    assert "Доброе утро" not in by_id[149].text
    assert by_id[149].parent is None


@pytest.mark.parametrize(
    ("post_id", "views"),
    [(141, 950), (143, 2300), (146, 33_000), (147, 1_100_000), (148, 12_500), (152, 210)],
)
def test_views_forms(by_id: dict[int, Post], post_id: int, views: int) -> None:
    assert by_id[post_id].metrics == {"views": views}


def test_parse_views_forms() -> None:
    assert parse_views("950") == 950
    assert parse_views("1.2K") == 1200
    assert parse_views("33.0K") == 33_000
    assert parse_views("1.1M") == 1_100_000
    assert parse_views("1,2K") == 1200
    assert parse_views("2B") == 2_000_000_000
    assert parse_views("много") is None


def test_published_at_and_url(by_id: dict[int, Post]) -> None:
    assert by_id[148].published_at == datetime(2026, 3, 1, 15, 45, 30, tzinfo=UTC)
    assert by_id[148].url == f"https://t.me/{CITY}/148"
    assert by_id[130].published_at == datetime(2026, 2, 27, 9, 0, tzinfo=UTC)


def test_edited_in_english_and_russian(by_id: dict[int, Post]) -> None:
    edited = sorted(n for n, p in by_id.items() if p.raw.get("edited"))
    assert edited == [130, 143, 148]  # «edited», «edited» after a signature, «изменено»


def test_signature_is_the_author(by_id: dict[int, Post]) -> None:
    assert by_id[148].author_name == "Дежурный редактор"
    assert by_id[148].raw["signature"] == "Дежурный редактор"
    assert by_id[141].author_name == "Верхнеозёрск: жалобы и новости"  # no signature
    assert "signature" not in by_id[141].raw
    assert {p.author_id for p in by_id.values()} == {CITY}


def test_forward_with_a_link_is_the_original_post(by_id: dict[int, Post]) -> None:
    assert by_id[146].repost_of == "vozersk_admin/2077"
    assert by_id[146].raw["forwarded_from"] == {
        "name": "Администрация Верхнеозёрска",
        "url": "https://t.me/Vozersk_Admin/2077",
        "post": "vozersk_admin/2077",
    }


def test_forward_without_a_link_is_the_name(by_id: dict[int, Post]) -> None:
    assert by_id[147].repost_of == "Житель Заречного района"
    assert by_id[141].repost_of is None


def test_album_is_one_post_with_its_media(newest: ParsedPage, by_id: dict[int, Post]) -> None:
    album = by_id[143]
    assert album.raw["album"] is True
    assert [m["post"] for m in album.raw["media"]] == [f"{CITY}/{n}" for n in (143, 144, 145)]
    assert {m["kind"] for m in album.raw["media"]} == {"photo"}
    assert album.raw["media"][1]["image"] == "https://cdn4.telesco.pe/file/made-up-photo-144.jpg"
    assert album.text.startswith("Яма на улице Ленина, 14\n\nТретью неделю")
    assert not any(p.native_id.endswith(("/144", "/145")) for p in newest.posts)


def test_link_preview_in_raw(by_id: dict[int, Post]) -> None:
    assert by_id[148].raw["link_preview"] == {
        "url": "https://vozersk.example/news/otoplenie?id=22&year=2026",
        "site": "Администрация Верхнеозёрска",
        "title": "О восстановлении отопления на ул. Гагарина",
        "description": "Работы на котельной №2 завершатся\nдо конца недели.",
    }
    assert "О восстановлении" not in by_id[148].text


def test_other_media_kinds(by_id: dict[int, Post]) -> None:
    assert by_id[150].raw["media"] == [
        {
            "kind": "poll",
            "question": "Какую улицу чистить от снега первой?",
            "options": ["Улицу Мира", "Улицу Садовую"],
        }
    ]
    assert by_id[151].raw["media"] == [
        {
            "kind": "document",
            "title": "grafik-vyvoza-musora-mart.pdf",
            "href": f"https://t.me/{CITY}/151",
        }
    ]
    assert by_id[132].raw["media"][0]["kind"] == "video"
    assert by_id[132].raw["media"][0]["duration"] == "0:47"
    assert by_id[136].raw["media"] == [{"kind": "sticker"}]
    assert by_id[136].text == ""
    assert "media" not in by_id[141].raw


def test_location_gives_geo(by_id: dict[int, Post]) -> None:
    assert by_id[152].geo == {"lat": 56.123456, "lon": 40.654321}
    assert by_id[152].raw["media"][0]["kind"] == "location"
    assert by_id[141].geo is None


# -- made-up yard channel: kinds the real page lacks ---------------------------------------------
YARD = "zarechye_dvor"


@pytest.fixture(scope="module")
def yard() -> dict[int, Post]:
    page = parse_case("media_and_forwards", f"https://t.me/s/{YARD}", YARD)
    assert page.problems == [] and page.title == "Заречье: наш двор"
    return {int(p.native_id.split("/")[1]): p for p in page.posts}


def test_round_video_is_its_own_kind(yard: dict[int, Post]) -> None:
    """Its player carries a "media is too big" fallback: still a round video, not unsupported."""
    assert yard[301].raw["media"] == [
        {
            "kind": "round_video",
            "image": "https://cdn4.telesco.pe/file/made-up-round-301.jpg",
            "duration": "0:12",
            "href": f"https://t.me/{YARD}/301",
        }
    ]


def test_voice_message_with_its_duration(yard: dict[int, Post]) -> None:
    assert yard[302].raw["media"] == [
        {"kind": "voice", "duration": "0:25", "href": f"https://t.me/{YARD}/302"}
    ]
    assert yard[302].text == "Голосовое от жительницы: у подъезда 3 снова не убран снег."


def test_audio_file_is_audio_with_title_and_performer(yard: dict[int, Post]) -> None:
    assert yard[303].raw["media"] == [
        {
            "kind": "audio",
            "title": "Гимн Заречья",
            "performer": "Хор ДК «Заря»",
            "href": f"https://t.me/{YARD}/303",
        }
    ]


def test_forward_from_a_profile_is_its_username(yard: dict[int, Post]) -> None:
    """A profile link is no post: ``repost_of`` is the username in lower case, as the
    ``telegram`` type stores a forward from a person with a public username."""
    assert yard[304].repost_of == "ivan_zarechny"
    assert yard[304].raw["forwarded_from"] == {
        "name": "Иван с Заречной",
        "url": "https://t.me/Ivan_Zarechny",
        "username": "ivan_zarechny",
    }


def test_links_of_the_text_and_the_buttons(yard: dict[int, Post]) -> None:
    post = yard[305]
    assert post.text == (
        "Отключение света 5 марта. Подробнее на сайте, график — "
        "https://zarechye.example/grafik.pdf.\nВопросы — в бот @zarechye_dvor_bot #свет"
    )
    assert post.raw["links"] == [
        {"text": "Подробнее на сайте", "url": "https://zarechye.example/news/15?from=tg&ref=1"},
        {
            "text": "https://zarechye.example/grafik.pdf",
            "url": "https://zarechye.example/grafik.pdf",
        },
        {"text": "@zarechye_dvor_bot", "url": "https://t.me/zarechye_dvor_bot"},
    ]
    assert post.raw["buttons"] == [
        {"text": "Подать заявку", "url": "https://zarechye.example/zayavka"},
        {"text": "Написать в бот", "url": "https://t.me/zarechye_dvor_bot"},
    ]
    assert "links" not in yard[303].raw and "buttons" not in yard[303].raw


def test_media_the_page_cannot_show_stays_unsupported(yard: dict[int, Post]) -> None:
    assert yard[306].raw["media"] == [{"kind": "unsupported"}]


# -- pages that are not a channel's posts -------------------------------------------------------
def test_empty_channel_is_not_an_error() -> None:
    page = parse_case("empty_channel", "https://t.me/s/ozersk_dvor", "ozersk_dvor")
    assert page.has_history and page.empty
    assert page.posts == [] and page.ids == [] and page.before is None
    assert page.title == "Двор на Озёрной"


def test_page_without_preview_has_no_history() -> None:
    page = parse_case("no_preview", "https://t.me/vozersk_zakryty", "vozersk_zakryty")
    assert not page.has_history and not page.empty
    assert page.posts == [] and page.title is None


def test_truncated_page_is_flagged() -> None:
    body = (CASES / "page_newest.html").read_bytes()
    cut = body[: body.index(b'data-post="verhneozersk_live/148"')]
    page = parse_page(cut, CITY_URL, CITY)
    assert page.truncated
    assert not parse_page(body, CITY_URL, CITY).truncated


def test_other_channels_posts_are_a_problem() -> None:
    page = parse_case("page_newest", "https://t.me/s/someone_else", "someone_else")
    assert page.problems == [
        "posts of another channel than @someone_else on https://t.me/s/someone_else"
    ]


# -- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "given",
    [
        "verhneozersk_live",
        "@verhneozersk_live",
        " https://t.me/verhneozersk_live ",
        "https://t.me/s/verhneozersk_live",
        "t.me/s/verhneozersk_live/",
        "http://telegram.me/verhneozersk_live",
        "https://t.me/verhneozersk_live?utm_source=site",
    ],
)
def test_channel_forms(given: str) -> None:
    assert normalise_channel(given) == "verhneozersk_live"
    options = Options(id="city", type="telegram_web", channel=given)
    assert options.channel == "verhneozersk_live"
    assert (options.max_pages, options.base_url) == (5, "https://t.me")


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("https://t.me/+AbCdEf123", "private invite link"),
        ("https://t.me/joinchat/AbCdEf123", "private invite link"),
        ("https://t.me/verhneozersk_live/148", "links to one post"),
        ("@ab", "not a channel username"),
        ("1channel", "not a channel username"),
        ("верхнеозёрск", "not a channel username"),
        ("https://vk.com/verhneozersk", "not a channel username"),
    ],
)
def test_bad_channels(given: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Options(id="city", type="telegram_web", channel=given)


def test_base_url_and_max_pages_bounds() -> None:
    options = Options(id="c", type="telegram_web", channel="abcde", base_url="http://h:8/")
    assert options.base_url == "http://h:8"
    assert options.platform == "telegram"
    with pytest.raises(ValidationError, match="base_url must start with http"):
        Options(id="c", type="telegram_web", channel="abcde", base_url="ftp://h")
    for pages in (0, 51):
        with pytest.raises(ValidationError):
            Options(id="c", type="telegram_web", channel="abcde", max_pages=pages)


def test_fixture_pages_are_utf8_html() -> None:
    for path in sorted(Path(CASES).glob("*.html")):
        text = path.read_text(encoding="utf-8")
        assert text.lstrip().lower().startswith("<!doctype html>"), path.name
        assert text.rstrip().endswith("</html>"), path.name


def test_quotes_and_code_blocks_stand_on_their_own_lines() -> None:
    body = (CASES / "page_before_130.html").read_text(encoding="utf-8")
    old = "Первая жалоба: на ул. Ленина не горят фонари от дома 1 до дома 20."
    new = (
        "Ответ горсвета:<blockquote>Замена ламп  на Ленина —\nдо 25 февраля.</blockquote>"
        "Заявка:<pre>№ 1042\n  фонари 1–20</pre>Ждём."
    )
    assert body.count(old) == 1
    page = parse_page(body.replace(old, new), CITY_URL, CITY)
    post = next(p for p in page.posts if p.native_id == f"{CITY}/105")
    assert post.text == (
        "Ответ горсвета:\nЗамена ламп на Ленина — до 25 февраля.\n"
        "Заявка:\n№ 1042\nфонари 1–20\nЖдём."
    )


@pytest.mark.parametrize(
    ("path", "key"),
    [("xCareers/1491", "xcareers/1491"), ("Adm_Gorod_N/7", "adm_gorod_n/7"), ("city", "city")],
)
def test_post_keys_ignore_the_case_of_the_username(path: str, key: str) -> None:
    assert post_key(path) == key
