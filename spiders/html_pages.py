"""Read list pages and item pages of the ``html`` source type into Posts (pure: no network).

:mod:`spiders.html` holds the options and the spider; selector syntax, decoding and URLs are
in :mod:`spiders.html_selectors`, dates in :mod:`spiders.html_dates`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from parsel import Selector

from crawler.model import Post
from spiders.charsets import charset_of
from spiders.html_dates import DateReader
from spiders.html_selectors import (
    absolute_url,
    all_text,
    first_link,
    first_text,
    read_page,
    select,
    text_of,
)

if TYPE_CHECKING:
    from spiders.html import Follow, Options, _Fields

ANSWER_FIELDS = ("answer", "answer_author", "answer_date")
PAGE_FIELDS = ("title", "text", "date", "author", *ANSWER_FIELDS)
ANSWER_SAMPLE = 5  # questions without any answer before the `answer` selector is suspected


@dataclass
class Item:
    """What a list item or an item page says; None where it says nothing."""

    url: str | None = None
    title: str | None = None
    text: str | None = None
    date: datetime | None = None
    date_text: str | None = None
    author: str | None = None
    answer: str | None = None
    answer_author: str | None = None
    answer_date: datetime | None = None
    answer_date_text: str | None = None
    anchor: str | None = None  # the item element's id, for items without a link

    def update(self, other: Item) -> None:
        """Take every field ``other`` has (an item page completing its list item)."""
        for name in (*PAGE_FIELDS, "date_text", "answer_date_text"):
            value = getattr(other, name)
            if value is not None:
                setattr(self, name, value)


@dataclass
class ListPage:
    url: str
    title: str | None
    items: list[Item]
    next_url: str | None
    misses: list[str] = field(default_factory=list)  # selectors that matched in no item
    bad_dates: list[str] = field(default_factory=list)  # date labels that could not be read
    uncertain_encoding: str | None = None  # the encoding read in, when that was a guess


@dataclass
class Tally:
    """How often each selector was tried and matched: the ones that never match are named.

    ``answer`` is suspected only after :data:`ANSWER_SAMPLE` questions without any answer
    (new questions wait for theirs); ``answer_author`` and ``answer_date`` count only where
    an answer was found.
    """

    tried: dict[str, int] = field(default_factory=dict)
    matched: dict[str, int] = field(default_factory=dict)

    def add(self, hits: dict[str, bool]) -> None:
        for name, hit in hits.items():
            self.tried[name] = self.tried.get(name, 0) + 1
            self.matched[name] = self.matched.get(name, 0) + hit

    def silent(self) -> list[str]:
        return [
            name
            for name, tried in self.tried.items()
            if not self.matched[name] and tried >= (ANSWER_SAMPLE if name == "answer" else 1)
        ]


def read_fields(
    node: Selector, selectors: _Fields, dates: DateReader, *, default_title: bool
) -> tuple[Item, dict[str, bool]]:
    """An :class:`Item` (without url) from ``node``; for each selector tried, whether it
    matched (answer_author and answer_date are tried only where there is an answer)."""
    item = Item()
    item.title = first_text(node, selectors.title)
    if item.title is None and default_title:
        texts = (text_of(a).replace("\n", " ") for a in node.css("a[href]"))
        item.title = next(filter(None, texts), None)
    item.text = all_text(node, selectors.text)
    item.date_text = first_text(node, selectors.date)
    item.date = dates.read(item.date_text)
    item.author = first_text(node, selectors.author)
    item.answer = all_text(node, selectors.answer)
    item.answer_author = first_text(node, selectors.answer_author)
    item.answer_date_text = first_text(node, selectors.answer_date)
    item.answer_date = dates.read(item.answer_date_text)
    hits = {}
    for name in PAGE_FIELDS:
        expr = getattr(selectors, name)
        if expr and (item.answer or name not in ("answer_author", "answer_date")):
            hits[name] = bool(select(node, expr))
    return item, hits


def parse_list(
    body: bytes,
    url: str,
    options: Options,
    dates: DateReader,
    content_type: str | None = None,
) -> ListPage:
    """Items of one list page; raises PageProblem when the page is empty or cut short."""
    page, uncertain = read_page(body, url, charset_of(content_type), options.encoding)
    nodes = select(page, options.item, relative=False)
    items: list[Item] = []
    tally = Tally()
    bad_dates: list[str] = []
    for node in nodes:
        item, hits = read_fields(node, options, dates, default_title=True)
        href = first_link(node, options.link)
        item.url = absolute_url(url, href) if href else None
        if options.link:
            hits = {"link": href is not None, **hits}
        tally.add(hits)
        if item.text is None and options.text is None:
            item.text = text_of(node) or None
        item.anchor = node.attrib.get("id") or node.attrib.get("data-id")
        bad_dates += unread_dates(item)
        items.append(item)
    next_href = first_link(page, options.next_page) if options.next_page else None
    title = first_text(page, "title")
    return ListPage(
        url=url,
        title=title,
        items=items,
        next_url=absolute_url(url, next_href) if next_href else None,
        misses=tally.silent(),
        bad_dates=bad_dates,
        uncertain_encoding=uncertain,
    )


def parse_item_page(
    body: bytes,
    url: str,
    follow: Follow,
    options: Options,
    dates: DateReader,
    content_type: str | None = None,
) -> tuple[Item, dict[str, bool], str | None]:
    """An item's own page: its fields, which ``follow`` selectors matched, and the encoding
    it was read in when that was a guess (see :func:`read_page`)."""
    page, uncertain = read_page(body, url, charset_of(content_type), options.encoding)
    return (*read_fields(page, follow, dates, default_title=False), uncertain)


def unread_dates(item: Item) -> list[str]:
    bad = []
    if item.date_text and item.date is None:
        bad.append(item.date_text)
    if item.answer_date_text and item.answer_date is None:
        bad.append(item.answer_date_text)
    return bad


def native_id(item: Item, source_url: str) -> str:
    """The item's URL; without one, the list address plus the item's id or a content hash."""
    if item.url:
        return item.url
    if item.anchor:
        return f"{source_url}#{item.anchor}"
    digest = hashlib.sha1(f"{item.title or ''}\n{item.text or ''}".encode()).hexdigest()
    return f"{source_url}#sha1:{digest[:16]}"


def item_posts(item: Item, source_url: str) -> list[Post]:
    """The item as a post, and its official answer (when it has one) as a comment on it."""
    ident = native_id(item, source_url)
    raw = {k: v for k, v in (("date", item.date_text), ("list", source_url)) if v}
    posts = [
        Post(
            platform="web",
            native_id=ident,
            kind="post",
            url=item.url,
            title=item.title,
            text=item.text or "",
            published_at=item.date,
            author_name=item.author,
            raw=raw,
        )
    ]
    if item.answer:
        posts.append(
            Post(
                platform="web",
                native_id=f"{ident}#answer",
                kind="comment",
                parent=ident,
                url=item.url,
                text=item.answer,
                published_at=item.answer_date,
                author_name=item.answer_author,
                author_is_official=True,
                raw={k: v for k, v in (("date", item.answer_date_text),) if v},
            )
        )
    return posts
