"""The `html` source type without a network: selectors, dates, decoding, URLs, and the list and
item pages of the made-up municipal sites in tests/fixtures/html/ (one field per test).

Relative dates are read against a fixed time: 2020-11-20 12:30 in Moscow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from parsel import Selector
from pydantic import ValidationError

from spiders.charsets import charset_of
from spiders.html import Options
from spiders.html_dates import DateReader, check_date_format
from spiders.html_pages import Item, ListPage, item_posts, parse_item_page, parse_list
from spiders.html_selectors import (
    PageProblem,
    all_text,
    canonical_url,
    check_encoding,
    compile_selector,
    decode_html,
    first_link,
    first_text,
    read_page,
)
from tests.conftest import FIXTURES

SITES = FIXTURES / "html"
NOW = datetime(2020, 11, 20, 9, 30, tzinfo=UTC)  # 12:30 in Moscow
ZONE = "Europe/Moscow"


def options(**values: Any) -> Options:
    return Options.model_validate({"id": "t", "type": "html", "timezone": ZONE, **values})


def fixture(relative: str) -> bytes:
    return (SITES / relative).read_bytes()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# -- selectors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "expr"),
    [
        (".news-item", "css", ".news-item"),
        ("a::attr(href)", "css", "a::attr(href)"),
        ("css: td > a", "css", "td > a"),
        ("//div[@class='news']", "xpath", "//div[@class='news']"),
        ("./td[2]", "xpath", "./td[2]"),
        ("(//table//tr)[position() > 1]", "xpath", "(//table//tr)[position() > 1]"),
        ("xpath: string(.//h3)", "xpath", "string(.//h3)"),
        ("XPATH:td[1]", "xpath", "td[1]"),
    ],
)
def test_selector_kind(text: str, kind: str, expr: str) -> None:
    assert compile_selector(text) == (kind, expr)


def test_field_xpath_from_the_root_is_read_relative_to_the_item() -> None:
    assert compile_selector("//a/@href", relative=True) == ("xpath", ".//a/@href")
    node = Selector(text="<div><p><a href='/1'>1</a></p><p id='x'><a href='/2'>2</a></p></div>")
    second = node.css("#x")[0]
    assert first_link(second, "//a/@href") == "/2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("div..news", "bad CSS selector 'div..news': Expected ident, got <DELIM '.' at 4>"),
        ("a::attr(", "bad CSS selector 'a::attr(': Expected an argument, got <EOF at 8>"),
        ("//div[", "bad XPath selector '//div[': invalid expression"),
        ("xpath:foo(", "bad XPath selector 'xpath:foo(': unregistered function"),
        ("  ", "the selector is empty"),
        ("xpath:", "the selector 'xpath:' has nothing after its prefix"),
    ],
)
def test_bad_selector_messages(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        compile_selector(text)
    assert str(caught.value) == message


def test_text_of_elements_keeps_paragraphs_and_strings_join_with_spaces() -> None:
    node = Selector(text="<div><p>Нет <b>воды</b>.</p><p>Вторую неделю.</p></div>")
    assert all_text(node, "p") == "Нет воды.\n\nВторую неделю."
    assert all_text(node, "p::text") == "Нет . Вторую неделю."
    assert first_text(node, "p") == "Нет воды."
    assert first_text(node, ".missing") is None


def test_first_link_takes_an_elements_href_or_its_links_and_skips_scripts() -> None:
    node = Selector(
        text="<div><a href='javascript:void(0)'>x</a><a href='#top'>y</a>"
        "<span class='t'><a href='/news/5.html'>z</a></span></div>"
    )
    assert first_link(node, "a") == "/news/5.html"
    assert first_link(node, "span.t") == "/news/5.html"
    assert first_link(node, "a::attr(href)") == "/news/5.html"
    assert first_link(node, "i") is None


# -- URLs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Adm.Example.RU:443/news/1.html#comments", "https://adm.example.ru/news/1.html"),
        (
            "http://adm.example.ru:80/n/?ID=5&utm_source=vk&UTM_medium=x",
            "http://adm.example.ru/n/?ID=5",
        ),
        (
            "http://a.ru/n/?yclid=1&ELEMENT_ID=7&clear_cache=Y&b=2",
            "http://a.ru/n/?ELEMENT_ID=7&b=2",
        ),
        ("http://a.ru:8080/n/?q=%CF%F0%E8%E5%EC", "http://a.ru:8080/n/?q=%CF%F0%E8%E5%EC"),
        ("http://a.ru", "http://a.ru/"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


# -- decoding ------------------------------------------------------------------------------------
CP1251_PAGE = fixture("sosnovka/priemnaya/vopros-317.html")


def test_fixture_is_truly_windows_1251() -> None:
    with pytest.raises(UnicodeDecodeError):
        CP1251_PAGE.decode("utf-8")
    assert "Ответ администрации" in CP1251_PAGE.decode("cp1251")


@pytest.mark.parametrize("header", [None, "windows-1251", "utf-8", "iso-8859-1"])
def test_windows_1251_page_is_read_whatever_the_header_says(header: str | None) -> None:
    text, encoding, sure = decode_html(CP1251_PAGE, header)
    assert "Ответ администрации" in text
    assert (encoding, sure) == ("cp1251", True)


def test_utf8_page_labelled_windows_1251_is_read_as_utf8() -> None:
    body = fixture("zarechny/news/1046.html").replace(b'charset="UTF-8"', b'charset="windows-1251"')
    text, encoding, _ = decode_html(body, "windows-1251")
    assert encoding == "utf-8"
    assert "котельной № 3" in text


def test_byte_order_mark_wins() -> None:
    decoded = decode_html("<p>Жалоба</p>".encode("utf-8-sig"), "windows-1251")
    assert decoded == ("<p>Жалоба</p>", "utf-8-sig", True)


def test_encoding_option_overrides_the_site_and_the_guess() -> None:
    body = "<html><body><p class='t'>Прорыв теплотрассы</p></body></html>".encode("koi8-r")
    page, uncertain = read_page(body, "http://a.ru/", "windows-1251", check_encoding("KOI8-R"))
    assert (first_text(page, ".t"), uncertain) == ("Прорыв теплотрассы", None)
    # The operator's word is final, even where the guess would read the page better.
    forced = decode_html(body, "koi8-r", check_encoding("windows-1251"))
    assert (forced.encoding, forced.sure) == ("cp1251", True)
    assert "Прорыв" not in forced.text


def test_charset_of_content_type() -> None:
    assert charset_of('text/html; charset="Windows-1251"') == "Windows-1251"
    assert charset_of("text/html") is None
    assert charset_of(None) is None


def test_empty_and_truncated_pages_are_problems() -> None:
    with pytest.raises(PageProblem, match=r"^empty page at http://a\.ru/ \(no content\)$"):
        read_page(b" \r\n ", "http://a.ru/", None, None)
    whole = fixture("zarechny/news/index.html")
    with pytest.raises(PageProblem) as caught:
        read_page(whole[:3000], "http://a.ru/", None, None)
    assert str(caught.value) == (
        "truncated HTML at http://a.ru/: the page ends before </body></html> (3000 bytes)"
    )
    assert read_page(b"<p>fragment</p>", "http://a.ru/", None, None)[0].css("p")  # no <html>


# -- dates ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("18 ноября 2020", utc(2020, 11, 17, 21, 0)),
        ("18.11.2020 16:29", utc(2020, 11, 18, 13, 29)),
        ("вчера в 10:15", utc(2020, 11, 19, 7, 15)),
        ("Вчера, 10:15", utc(2020, 11, 19, 7, 15)),
        ("сегодня, 09:00", utc(2020, 11, 20, 6, 0)),
        ("Сегодня в 09:00", utc(2020, 11, 20, 6, 0)),
        ("17 ноября 2020 г. в 11:05", utc(2020, 11, 17, 8, 5)),
        ("18 Ноября 2020, 16:29", utc(2020, 11, 18, 13, 29)),
        ("16:29 18.11.2020", utc(2020, 11, 18, 13, 29)),
        ("16.11.2020", utc(2020, 11, 15, 21, 0)),
        ("18 ноября", utc(2020, 11, 17, 21, 0)),  # no year: the latest past one
        ("3 часа назад", utc(2020, 11, 20, 6, 30)),
        ("Вопрос № 317 от 17.11.2020 19:40", utc(2020, 11, 17, 16, 40)),
        ("Дата ответа: 18.11.2020", utc(2020, 11, 17, 21, 0)),
        ("Опубликовано: 18 ноября 2020 | Просмотров: 120", utc(2020, 11, 17, 21, 0)),
        ("2020-11-18T16:29:00+03:00", utc(2020, 11, 18, 13, 29)),
        ("2020-11-18 16:29", utc(2020, 11, 18, 13, 29)),
        ("2020-11-18T13:29:00Z", utc(2020, 11, 18, 13, 29)),
    ],
)
def test_russian_dates_in_moscow(label: str, expected: datetime) -> None:
    assert DateReader(ZONE, now=NOW).read(label) == expected


def test_dates_are_read_in_the_sources_zone() -> None:
    vladivostok = DateReader("Asia/Vladivostok", now=NOW)  # UTC+10: already 19:30 on the 20th
    assert vladivostok.read("18.11.2020 16:29") == utc(2020, 11, 18, 6, 29)
    assert vladivostok.read("сегодня, 09:00") == utc(2020, 11, 19, 23, 0)
    assert vladivostok.read("вчера в 23:50") == utc(2020, 11, 19, 13, 50)


@pytest.mark.parametrize("label", ["", "   ", "Просмотров: 5", "нет даты"])
def test_unreadable_dates_are_none(label: str) -> None:
    assert DateReader(ZONE, now=NOW).read(label) is None


def test_date_format_is_strptime_in_the_sources_zone() -> None:
    reader = DateReader(ZONE, "%d/%m/%Y %H.%M", now=NOW)
    assert reader.read(" 18/11/2020  16.29 ") == utc(2020, 11, 18, 13, 29)
    assert reader.read("18 ноября 2020") is None  # the format is the rule


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("%d.%m.%Q", "date_format '%d.%m.%Q' is not a strptime format: 'Q' is a bad directive"),
        ("dd.mm.yyyy", "date_format 'dd.mm.yyyy' has no % directive (e.g. '%d.%m.%Y %H:%M')"),
    ],
)
def test_bad_date_format(value: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        check_date_format(value)
    assert check_date_format("%d.%m.%Y %H:%M") == "%d.%m.%Y %H:%M"


# -- options -------------------------------------------------------------------------------------
def errors(**values: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        options(**values)
    return [
        (".".join(map(str, e["loc"])), e["msg"].removeprefix("Value error, "))
        for e in caught.value.errors()
    ]


def test_defaults() -> None:
    o = options(url="https://adm.example.ru/news/", item=".news-item")
    assert (o.link, o.title, o.text, o.date, o.follow, o.next_page) == (
        "a::attr(href)",
        None,
        None,
        None,
        None,
        None,
    )
    assert (o.max_pages, o.encoding, o.date_format, o.platform) == (5, None, None, "web")


def test_option_errors() -> None:
    assert errors(url="ftp://a.ru/", item="div", follow={}) == [
        ("url", "url must start with http:// or https:// (got 'ftp://a.ru/')"),
        (
            "follow",
            "follow needs at least one selector for the item page: title, text, date, "
            "author, answer, answer_author, answer_date",
        ),
    ]
    assert errors(url="http://a.ru/", item="div", answer_author=".who") == [
        ("", "'answer_author' needs an 'answer' selector beside it")
    ]
    assert errors(url="http://a.ru/", item="div", link=None, follow={"text": "p"}) == [
        ("", "'follow' needs a 'link' selector to find each item's page")
    ]
    assert errors(url="http://a.ru/", item="div", encoding="cp-1251x") == [
        ("encoding", "unknown encoding 'cp-1251x' (use a name like windows-1251, utf-8, koi8-r)")
    ]
    assert errors(url="http://a.ru/", item="div", max_pages=0)[0][0] == "max_pages"
    assert options(url="http://a.ru/", item="div", encoding="Windows-1251").encoding == "cp1251"


# -- zarechny: Bitrix news list, UTF-8 -----------------------------------------------------------
ZARECHNY = "https://zarechny.example.ru/zarechny/news/"


@pytest.fixture(scope="module")
def zarechny_options() -> Options:
    return options(
        url=ZARECHNY,
        item=".news-list .news-item",
        date=".news-date-time",
        next_page="a.modern-page-next",
        follow={"text": ".news-detail-text", "author": ".news-detail-author span"},
    )


@pytest.fixture(scope="module")
def zarechny(zarechny_options: Options) -> ListPage:
    return parse_list(
        fixture("zarechny/news/index.html"),
        ZARECHNY,
        zarechny_options,
        DateReader(ZONE, now=NOW),
        "text/html; charset=UTF-8",
    )


def test_zarechny_items(zarechny: ListPage) -> None:
    assert len(zarechny.items) == 4
    assert zarechny.misses == []
    assert zarechny.bad_dates == []


def test_zarechny_urls_lose_tracking_parameters(zarechny: ListPage) -> None:
    assert [i.url for i in zarechny.items] == [
        f"{ZARECHNY}{n}.html" for n in (1046, 1045, 1044, 1043)
    ]


def test_zarechny_titles_default_to_the_first_link_with_text(zarechny: ListPage) -> None:
    assert [i.title for i in zarechny.items] == [
        "На котельной № 3 завершили замену насосов",
        "График вывоза мусора в частном секторе изменится",
        "Ремонт дороги на ул. Школьной перенесён на весну",
        "В поликлинике № 2 открылся новый кабинет записи",
    ]


def test_zarechny_dates(zarechny: ListPage) -> None:
    assert [i.date for i in zarechny.items] == [
        utc(2020, 11, 18, 13, 29),
        utc(2020, 11, 17, 21, 0),
        utc(2020, 11, 17, 8, 5),
        utc(2020, 11, 15, 21, 0),
    ]


def test_zarechny_text_defaults_to_the_whole_item(zarechny: ListPage) -> None:
    assert zarechny.items[0].text == (
        "18.11.2020 16:29 На котельной № 3 завершили замену насосов\n"
        "Подача тепла в дома микрорайона Северный восстановлена."
    )


def test_zarechny_next_page_and_title(zarechny: ListPage) -> None:
    assert zarechny.next_url == f"{ZARECHNY}page-2.html"
    assert zarechny.title == "Новости — Администрация города Заречный"


def test_zarechny_last_page_has_no_next(zarechny_options: Options) -> None:
    last = parse_list(
        fixture("zarechny/news/page-2.html"), ZARECHNY, zarechny_options, DateReader(ZONE)
    )
    assert last.next_url is None
    assert len(last.items) == 3


def test_zarechny_item_page(zarechny_options: Options) -> None:
    assert zarechny_options.follow is not None
    found, hits, uncertain = parse_item_page(
        fixture("zarechny/news/1046.html"),
        f"{ZARECHNY}1046.html",
        zarechny_options.follow,
        zarechny_options,
        DateReader(ZONE),
    )
    assert hits == {"text": True, "author": True}
    assert uncertain is None  # UTF-8
    assert found.text == (
        "Специалисты МУП «Теплосеть» завершили замену двух сетевых насосов на котельной № 3.\n\n"
        "Жители домов по ул. Северной, 4, 6 и 8 жаловались на холодные батареи с начала недели. "
        "Подача тепла восстановлена в полном объёме к 15:00."
    )
    assert found.author == "Пресс-служба администрации"
    assert (found.title, found.date) == (None, None)  # not asked for on the item page


def test_missing_field_selector_is_reported(zarechny_options: Options) -> None:
    page = parse_list(
        fixture("zarechny/news/index.html"),
        ZARECHNY,
        zarechny_options.model_copy(update={"author": ".news-author", "date": ".date"}),
        DateReader(ZONE),
    )
    assert page.misses == ["date", "author"]


def test_unreadable_dates_are_collected() -> None:
    page = parse_list(
        "<ul><li><a href='/1'>1</a><i>когда-то</i></li>"
        "<li><a href='/2'>2</a><i>18.11.2020</i></li></ul>".encode(),
        "http://a.ru/",
        options(url="http://a.ru/", item="li", date="i"),
        DateReader(ZONE),
    )
    assert page.bad_dates == ["когда-то"]
    assert page.items[1].date == utc(2020, 11, 17, 21, 0)


# -- sosnovka: интернет-приёмная, windows-1251, XPath --------------------------------------------
SOSNOVKA = "http://sosnovka.example.ru/sosnovka/priemnaya/"


@pytest.fixture(scope="module")
def sosnovka_options() -> Options:
    return options(
        url=SOSNOVKA,
        item="//table[@class='qa-list']//tr[td]",
        link="td.qa-subject a",
        title="./td[@class='qa-subject']",
        date="./td[2]",
        next_page="xpath://div[@class='pager']/a[contains(., 'Следующая')]/@href",
        follow={
            "text": ".question-text",
            "date": ".question-head",
            "author": ".question-author b",
            "answer": ".answer-text",
            "answer_author": ".answer-author",
            "answer_date": ".answer-date",
        },
    )


def sosnovka_item(number: int, opts: Options) -> tuple[Item, dict[str, bool]]:
    assert opts.follow is not None
    item, hits, _ = parse_item_page(
        fixture(f"sosnovka/priemnaya/vopros-{number}.html"),
        f"{SOSNOVKA}vopros-{number}.html",
        opts.follow,
        opts,
        DateReader(ZONE, now=NOW),
        "text/html",
    )
    return item, hits


def test_sosnovka_list(sosnovka_options: Options) -> None:
    page = parse_list(
        fixture("sosnovka/priemnaya/index.html"),
        SOSNOVKA,
        sosnovka_options,
        DateReader(ZONE, now=NOW),
        "text/html; charset=utf-8",  # a lie: the page is windows-1251
    )
    assert [i.url for i in page.items] == [f"{SOSNOVKA}vopros-{n}.html" for n in (318, 317, 316)]
    assert page.items[0].title == "Нет отопления в доме по ул. Лесной, 7"
    assert page.items[0].date == utc(2020, 11, 19, 5, 12)
    assert page.next_url == f"{SOSNOVKA}page-2.html"
    assert page.misses == []


def test_sosnovka_question_with_answer(sosnovka_options: Options) -> None:
    found, hits = sosnovka_item(317, sosnovka_options)
    assert list(hits.values()) == [True] * 6
    assert found.date == utc(2020, 11, 17, 16, 40)
    assert found.author == "Водитель автобуса № 4"
    assert found.text == (
        "На въезде на остановку «Школа» по ул. Центральной яма глубиной около 20 см.\n"
        "Автобусы объезжают её по встречной полосе, это опасно."
    )
    assert found.answer_author == "Отдел дорожного хозяйства"
    assert found.answer_date == utc(2020, 11, 17, 21, 0)
    assert found.answer == (
        "Яма на ул. Центральной у остановки «Школа» заделана холодным асфальтом 18.11.2020.\n\n"
        "Капитальный ремонт участка включён в план на 2021 год."
    )


def test_sosnovka_question_still_waiting(sosnovka_options: Options) -> None:
    found, hits = sosnovka_item(318, sosnovka_options)
    assert hits == {"text": True, "date": True, "author": True, "answer": False}
    assert found.answer is None
    item = Item(url=f"{SOSNOVKA}vopros-318.html", title="Нет отопления")
    item.update(found)
    assert [p.kind for p in item_posts(item, SOSNOVKA)] == ["post"]


def test_answer_becomes_an_official_comment_on_the_question(sosnovka_options: Options) -> None:
    item = Item(url=f"{SOSNOVKA}vopros-317.html", title="Яма на дороге у остановки «Школа»")
    item.update(sosnovka_item(317, sosnovka_options)[0])
    question, answer = item_posts(item, SOSNOVKA)
    assert (question.platform, question.kind, question.native_id, question.url) == (
        "web",
        "post",
        f"{SOSNOVKA}vopros-317.html",
        f"{SOSNOVKA}vopros-317.html",
    )
    assert question.title == "Яма на дороге у остановки «Школа»"
    assert question.author_is_official is False
    assert (answer.platform, answer.kind) == ("web", "comment")
    assert answer.native_id == f"{SOSNOVKA}vopros-317.html#answer"
    assert answer.parent == question.native_id
    assert answer.author_is_official is True
    assert answer.author_name == "Отдел дорожного хозяйства"
    assert answer.published_at == utc(2020, 11, 17, 21, 0)
    assert answer.raw == {"date": "Дата ответа: 18.11.2020"}


# -- lenino: questions and answers on one page, relative dates, no links -------------------------
LENINO = "http://lenino.example.ru/voprosy.html"


@pytest.fixture(scope="module")
def lenino() -> ListPage:
    opts = options(
        url=LENINO,
        item=".faq-item",
        link=None,
        text=".faq-question",
        date=".faq-date",
        author=".faq-author",
        answer=".faq-answer-text",
        answer_author=".faq-answer-author",
        answer_date=".faq-answer-date",
    )
    return parse_list(fixture("lenino/voprosy.html"), LENINO, opts, DateReader(ZONE, now=NOW))


def test_lenino_items_without_links_are_named_by_their_id(lenino: ListPage) -> None:
    assert lenino.misses == []
    ids = [item_posts(i, LENINO)[0].native_id for i in lenino.items]
    assert ids == [f"{LENINO}#q-57", f"{LENINO}#q-56", f"{LENINO}#q-55"]


def test_lenino_relative_dates(lenino: ListPage) -> None:
    assert [i.date for i in lenino.items] == [
        utc(2020, 11, 20, 6, 0),
        utc(2020, 11, 19, 7, 15),
        utc(2020, 11, 17, 21, 0),
    ]
    assert [i.answer_date for i in lenino.items] == [
        utc(2020, 11, 20, 8, 30),
        None,
        utc(2020, 11, 19, 13, 29),
    ]


def test_lenino_answers_on_the_list_page(lenino: ListPage) -> None:
    posts = [p for i in lenino.items for p in item_posts(i, LENINO)]
    assert [(p.kind, p.parent) for p in posts] == [
        ("post", None),
        ("comment", f"{LENINO}#q-57"),
        ("post", None),
        ("post", None),
        ("comment", f"{LENINO}#q-55"),
    ]
    assert posts[1].text == (
        "Заявка передана подрядчику.\n\nЗамена ламп запланирована на эту неделю."
    )
    assert posts[1].author_name == "Глава поселения"
    assert posts[0].author_name == "Житель ул. Набережной"
    assert posts[0].title is None  # no link in the item, no title selector


def test_item_without_link_or_id_gets_a_content_hash() -> None:
    item = Item(title="Нет воды", text="Третий день нет воды на ул. Мира.")
    (post,) = item_posts(item, LENINO)
    assert post.native_id.startswith(f"{LENINO}#sha1:")
    assert post.native_id == item_posts(Item(title="Нет воды", text=item.text), LENINO)[0].native_id
    assert post.url is None


def test_answer_parts_are_checked_only_where_there_is_an_answer() -> None:
    opts = options(
        url=LENINO,
        item=".faq-item",
        link=None,
        answer=".faq-answer-text",
        answer_author=".faq-answer-who",
        answer_date=".faq-answer-date",
    )
    page = parse_list(fixture("lenino/voprosy.html"), LENINO, opts, DateReader(ZONE, now=NOW))
    assert page.misses == ["answer_author"]


@pytest.mark.parametrize(("questions", "misses"), [(4, []), (5, ["answer"])])
def test_answer_selector_is_suspected_only_after_several_questions(
    questions: int, misses: list[str]
) -> None:
    rows = "".join(
        f"<li><a href='/q/{n}'>Вопрос {n}</a><div class='otvet'>Ответ {n}</div></li>"
        for n in range(questions)
    )
    page = parse_list(
        f"<html><body><ul>{rows}</ul></body></html>".encode(),
        "http://a.ru/",
        options(url="http://a.ru/", item="li", answer=".answer"),
        DateReader(ZONE),
    )
    assert page.misses == misses
