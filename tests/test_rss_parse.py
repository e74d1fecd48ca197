"""parse_feed on the real mos.ru feed (one field per test) and on made-up fixture cases.

The real feed is read in place from ../shared/data; the oracle for its fields is the XML read
independently with ElementTree. Each made-up case in tests/fixtures/rss/ is a feed document
``<case>.<ext>`` with ``<case>.expected.json`` beside it; one harness runs them all. Texts and
titles are compared after the pipeline's own normalisation (``crawler.normalize``).
"""

from __future__ import annotations

import email.utils
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler.normalize import normalise, plain_text
from spiders.rss import ParsedFeed, parse_feed
from tests.conftest import FIXTURES, shared

MOS_URL = "https://www.mos.ru/rss"
CASES = FIXTURES / "rss"


# -- the real mos.ru feed ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mos_body() -> bytes:
    return shared("fixtures/rss_mos_ru_news_2022-07-27.xml").read_bytes()


@pytest.fixture(scope="module")
def mos(mos_body: bytes) -> ParsedFeed:
    return parse_feed(mos_body, MOS_URL, "application/rss+xml; charset=utf-8")


@pytest.fixture(scope="module")
def items(mos_body: bytes) -> list[ET.Element]:
    return list(ET.fromstring(mos_body).iter("item"))


def test_mos_is_a_feed_without_problems(mos: ParsedFeed) -> None:
    assert mos.is_feed
    assert mos.problem is None
    assert mos.next_url is None


def test_mos_title(mos: ParsedFeed) -> None:
    assert mos.title == "Официальный портал Мэра и Правительства Москвы"


def test_mos_count(mos: ParsedFeed, items: list[ET.Element]) -> None:
    assert len(items) == 10
    assert len(mos.posts) == 10


def test_mos_platform_and_kind(mos: ParsedFeed) -> None:
    assert {(p.platform, p.kind) for p in mos.posts} == {("rss", "post")}


def test_mos_native_id_is_link(mos: ParsedFeed, items: list[ET.Element]) -> None:
    assert all(item.find("guid") is None for item in items)  # so the link is the id
    assert [p.native_id for p in mos.posts] == [item.findtext("link") for item in items]
    assert mos.posts[0].native_id == "https://www.mos.ru/news/item/110547073/"
    assert len({p.native_id for p in mos.posts}) == 10


def test_mos_url(mos: ParsedFeed, items: list[ET.Element]) -> None:
    assert [p.url for p in mos.posts] == [item.findtext("link") for item in items]


def test_mos_title_per_entry(mos: ParsedFeed, items: list[ET.Element]) -> None:
    assert [p.title for p in mos.posts] == [item.findtext("title") for item in items]
    assert mos.posts[0].title == (
        "«Моспром вдохновляет»: открыта регистрация на первые бесплатные спектакли"
    )


def test_mos_text_is_description_as_plain_text(mos: ParsedFeed, items: list[ET.Element]) -> None:
    descriptions = [plain_text(item.findtext("description")) for item in items]
    assert [plain_text(p.text) for p in mos.posts] == descriptions
    assert mos.posts[1].text == "Жители пяти пятиэтажек получат новые квартиры."
    assert all("<" not in p.text for p in mos.posts)


def test_mos_published_at_in_utc(mos: ParsedFeed, items: list[ET.Element]) -> None:
    expected = [
        email.utils.parsedate_to_datetime(item.findtext("pubDate")).astimezone(UTC)
        for item in items
    ]
    assert [p.published_at for p in mos.posts] == expected
    assert all(p.published_at.utcoffset().total_seconds() == 0 for p in mos.posts)
    # pubDate "Wed, 27 Jul 2022 11:01:01 +0300"
    assert mos.posts[0].published_at == datetime(2022, 7, 27, 8, 1, 1, tzinfo=UTC)
    assert mos.posts[-1].published_at == datetime(2022, 7, 27, 6, 1, 1, tzinfo=UTC)


def test_mos_edited_at_unset(mos: ParsedFeed) -> None:
    assert [p.edited_at for p in mos.posts] == [None] * 10


def test_mos_raw_has_enclosures(mos: ParsedFeed, items: list[ET.Element]) -> None:
    for post, item in zip(mos.posts, items, strict=True):
        enclosures = [{"href": e.get("url"), "type": e.get("type")} for e in item.iter("enclosure")]
        assert post.raw["enclosures"] == enclosures
    butovo = next(p for p in mos.posts if p.native_id.endswith("/231299/8496050/"))
    assert len(butovo.raw["enclosures"]) == 19
    json.dumps(mos.posts[0].raw)  # provenance must be storable as JSON


def test_mos_raw_keeps_the_original_fields(mos: ParsedFeed, items: list[ET.Element]) -> None:
    raw = mos.posts[0].raw
    assert raw["link"] == items[0].findtext("link")
    assert raw["published"] == "Wed, 27 Jul 2022 11:01:01 +0300"
    assert raw["summary"] == items[0].findtext("description")


def test_mos_parse_is_pure_and_repeatable(mos_body: bytes, mos: ParsedFeed) -> None:
    again = parse_feed(mos_body, MOS_URL, None)
    assert [(p.native_id, p.text, p.published_at) for p in again.posts] == [
        (p.native_id, p.text, p.published_at) for p in mos.posts
    ]


# -- made-up cases, feedparser-tests style -------------------------------------------------------
def _cases() -> list[tuple[str, Path, Path]]:
    found = []
    for expected in sorted(CASES.glob("*.expected.json")):
        case = expected.name.removesuffix(".expected.json")
        documents = [p for p in CASES.glob(f"{case}.*") if p != expected]
        assert len(documents) == 1, f"{case}: expected one feed document beside {expected.name}"
        found.append((case, documents[0], expected))
    return found


CASE_LIST = _cases()


def test_every_case_has_its_document() -> None:
    assert len(CASE_LIST) >= 8
    documents = {doc.name for _, doc, _ in CASE_LIST}
    others = {p.name for p in CASES.iterdir() if not p.name.endswith(".expected.json")}
    assert others == documents, "every fixture document needs a <case>.expected.json"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@pytest.mark.parametrize(
    ("case", "document", "expected_path"), CASE_LIST, ids=[c[0] for c in CASE_LIST]
)
def test_fixture_case(case: str, document: Path, expected_path: Path) -> None:
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    content_types = expected["content_type"]
    if not isinstance(content_types, list):
        content_types = [content_types]
    for content_type in content_types:
        with_type = f"{case} served as {content_type}"
        feed = parse_feed(document.read_bytes(), expected["url"], content_type)
        assert feed.is_feed is expected["is_feed"], with_type
        assert feed.title == expected["title"], with_type
        assert feed.next_url == expected["next_url"], with_type
        if "problem" in expected:
            if expected["problem"] is None:
                assert feed.problem is None, with_type
            else:
                assert feed.problem and expected["problem"] in feed.problem, with_type
        assert len(feed.posts) == len(expected["posts"]), with_type
        for n, (post, want) in enumerate(zip(feed.posts, expected["posts"], strict=True)):
            normalise(post, UTC)  # what the pipeline does before storing
            got = {
                "native_id": post.native_id,
                "url": post.url,
                "title": post.title,
                "text": post.text,
                "author_name": post.author_name,
                "published_at": _iso(post.published_at),
                "edited_at": _iso(post.edited_at),
            }
            for key, value in want.items():
                assert got[key] == value, f"{with_type}: entry {n}: {key}"
