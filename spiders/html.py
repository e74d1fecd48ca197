"""Web pages without a feed (municipal news, «интернет-приёмная»): items found by selectors.

A list page holds items (``item`` selector); each item gives a link, title, text, date and
author (selectors relative to the item). With ``follow`` the spider also fetches each item's
own page for the full text. On question-and-answer pages the ``answer`` selector turns the
official answer into a second post (a comment on the question, by an official author).
Selector syntax, decoding and URLs: :mod:`spiders.html_selectors`; dates:
:mod:`spiders.html_dates`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from crawler.model import Checkpoint, Post, SourceConfig, SourceInfo, Strict
from crawler.validators import http_address
from spiders.base import GlasSpider, describe_failure
from spiders.html_dates import DateReader, check_date_format
from spiders.html_pages import (
    PAGE_FIELDS,
    Item,
    Tally,
    item_posts,
    native_id,
    parse_item_page,
    parse_list,
    unread_dates,
)
from spiders.html_selectors import PageProblem, check_encoding, check_selector

SEEN_LIMIT = 1000  # item URLs remembered in the cursor
SELECTOR_HELP = "CSS (a::attr(href), .news-date::text) or XPath (//a/@href, xpath:...)"


class _Fields(Strict):
    """Selectors of one item's fields; each is CSS or XPath, relative to the item."""

    title: str | None = Field(None, description="Title; default: the first link's text.")
    text: str | None = Field(None, description="Body text; default: the whole item's text.")
    date: str | None = Field(None, description="Publication date (see date_format).")
    author: str | None = Field(None, description="Author's name.")
    answer: str | None = Field(
        None, description="Official answer on a question-and-answer page: stored as a comment."
    )
    answer_author: str | None = Field(None, description="Who gave the answer.")
    answer_date: str | None = Field(None, description="When the answer was given.")

    @field_validator(*PAGE_FIELDS, mode="after")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return check_selector(value)

    @model_validator(mode="after")
    def _answer_parts(self) -> _Fields:
        for name in ("answer_author", "answer_date"):
            if getattr(self, name) and not self.answer:
                raise ValueError(f"'{name}' needs an 'answer' selector beside it")
        return self


class Follow(_Fields):
    """Selectors on each item's own page (relative to the page); they win over the list's."""

    @model_validator(mode="after")
    def _something(self) -> Follow:
        if not any(getattr(self, name) for name in PAGE_FIELDS):
            raise ValueError(
                f"follow needs at least one selector for the item page: {', '.join(PAGE_FIELDS)}"
            )
        return self


class Options(SourceConfig, _Fields):
    """A web page listing items (news, announcements, questions), read with selectors."""

    platform: ClassVar[str] = "web"

    type: Literal["html"]
    url: str = Field(..., description="Address of the (first) list page.")
    item: str = Field(..., description=f"Selector of each item on the list page: {SELECTOR_HELP}.")
    link: str | None = Field(
        "a::attr(href)",
        description="Selector of the item's link (its own page); null when items have none.",
    )
    date_format: str | None = Field(
        None,
        description="strptime format of dates, e.g. '%d.%m.%Y %H:%M'; default: read Russian "
        "dates automatically (18 ноября 2020, 18.11.2020 16:29, вчера в 10:15).",
    )
    follow: Follow | None = Field(
        None, description="Fetch each item's page and read these selectors there."
    )
    next_page: str | None = Field(None, description="Selector of the link to the next list page.")
    max_pages: int = Field(
        5, ge=1, le=100, description="List pages read on a first run (later runs stop earlier)."
    )
    encoding: str | None = Field(
        None, description="Encoding of the pages (e.g. windows-1251) when the site says wrong."
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        return http_address(value, "url")

    @field_validator("item", "link", "next_page", mode="after")
    @classmethod
    def _own_selector(cls, value: str | None) -> str | None:
        return check_selector(value)

    @field_validator("date_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        return check_date_format(value)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        return check_encoding(value)

    @model_validator(mode="after")
    def _follow_needs_link(self) -> Options:
        if self.follow and not self.link:
            raise ValueError("'follow' needs a 'link' selector to find each item's page")
        return self

    @property
    def has_answers(self) -> bool:
        return bool(self.answer or (self.follow and self.follow.answer))


# -- the spider ----------------------------------------------------------------------------------
class Spider(GlasSpider):
    """Read list pages one after another; with ``follow``, each page's new items' pages too.

    The cursor: ``newest`` (ISO date of the newest item stored), ``seen`` (recent item URLs,
    newest first) and ``waiting`` (questions stored without an answer yet: fetched again).
    An item already seen and not newer than ``newest`` is not fetched again; paging stops at
    a page whose items are all old. Between pages the old cursor is saved with the posts;
    the new one only at the end, so a run cut short is redone (harmlessly) next time.
    """

    name = "html"

    async def start(self) -> Any:
        self.dates = DateReader(self.options.timezone or "UTC", self.options.date_format)
        self.known_newest = _parse_iso(self.cursor.get("newest"))
        self.known_seen = set(self.cursor.get("seen") or [])
        self.waiting: list[str] = list(self.cursor.get("waiting") or [])
        self.newest = self.known_newest
        self.seen: list[str] = []  # stored in this run, in page order
        self.still_waiting: list[str] = []
        self.pages_seen = {self.options.url}
        self.requested: set[str] = set()
        self.pending = 0
        self.page_after: tuple[int, str | None, bool] = (1, None, True)
        self.follow_tally = Tally()
        self.follow_read: list[str] = []  # item pages read, for examples in warnings
        self.order: dict[str, int] = {}  # item URL -> position in the list pages
        self.encoding_warned = False
        yield self.request(self.options.url, callback=self.parse_page, cb_kwargs={"page": 1})

    # list pages
    def parse_page(self, response: Any, page: int) -> Iterator[Any]:
        try:
            listing = parse_list(
                response.body, response.url, self.options, self.dates, _ctype(response)
            )
        except PageProblem as problem:
            raise self.fail(str(problem)) from None
        if not listing.items:
            if page == 1:
                raise self.fail(f"selector `item` matched nothing on {response.url}")
            self.collection.warn(
                f"selector `item` matched nothing on {response.url} (page {page}): paging stopped"
            )
            yield from self.finish()
            return
        if page == 1:
            yield SourceInfo(title=listing.title, url=self.options.url)
        self.warn_encoding(response.url, listing.uncertain_encoding)
        for name in listing.misses:
            expr = getattr(self.options, name)
            self.collection.warn(
                f"selector `{name}` ({expr}) matched nothing in any of the "
                f"{len(listing.items)} items on {response.url}"
            )
        if listing.bad_dates:
            self.collection.warn(
                f"{len(listing.bad_dates)} unreadable dates on {response.url}, e.g. "
                f"{listing.bad_dates[0]!r}: set date_format"
            )
        fetch: list[Item] = []
        page_old = True
        for item in listing.items:
            ident = native_id(item, self.options.url)
            stored = self._is_stored(ident, item.date)
            page_old = page_old and (stored or self._older(item.date))
            if ident in self.requested:
                continue
            self.requested.add(ident)
            self.order[ident] = len(self.order)
            if self.options.follow and item.url:
                if not stored or ident in self.waiting:
                    fetch.append(item)
            else:
                yield from self.emit(item)
        next_url = listing.next_url if listing.next_url not in self.pages_seen else None
        self.page_after = (page, next_url, page_old)
        if not fetch:
            yield from self.after_page()
            return
        self.pending = len(fetch)
        for item in fetch:
            assert item.url is not None
            request = self.request(
                item.url, callback=self.parse_item, cb_kwargs={"item": item}, dont_filter=True
            )
            yield request.replace(errback=self.item_failed)

    def after_page(self) -> Iterator[Any]:
        page, next_url, page_old = self.page_after
        if next_url and page < self.options.max_pages and not page_old:
            self.pages_seen.add(next_url)
            yield Checkpoint(self.cursor)
            yield self.request(next_url, callback=self.parse_page, cb_kwargs={"page": page + 1})
            return
        yield from self.finish()

    def finish(self) -> Iterator[Any]:
        follow = self.options.follow
        if follow and self.follow_read:
            example = min(self.follow_read, key=lambda u: self.order.get(u, len(self.order)))
            for name in self.follow_tally.silent():
                expr = getattr(follow, name)
                self.collection.warn(
                    f"selector `follow.{name}` ({expr}) matched nothing on any of the "
                    f"{self.follow_tally.tried[name]} item pages (e.g. {example})"
                )
        seen = list(dict.fromkeys(self.seen + list(self.cursor.get("seen") or [])))
        stored = set(self.seen)
        waiting = [u for u in self.waiting if u not in stored] + self.still_waiting
        yield Checkpoint(
            {
                "newest": self.newest.isoformat() if self.newest else None,
                "seen": seen[: max(SEEN_LIMIT, len(self.seen))],
                "waiting": list(dict.fromkeys(waiting))[-SEEN_LIMIT:],
            }
        )

    # item pages
    def parse_item(self, response: Any, item: Item) -> Iterator[Any]:
        follow = self.options.follow
        assert follow is not None
        try:
            found, hits, uncertain = parse_item_page(
                response.body, response.url, follow, self.options, self.dates, _ctype(response)
            )
        except PageProblem as problem:
            self.collection.warn(f"item skipped: {problem}")
        else:
            self.warn_encoding(response.url, uncertain)
            self.follow_read.append(item.url or response.url)
            self.follow_tally.add(hits)
            bad = unread_dates(found)
            if bad:
                self.collection.warn(f"unreadable date {bad[0]!r} on {response.url}")
            item.update(found)
            yield from self.emit(item)
        yield from self.item_done()

    def item_failed(self, failure: Any) -> Iterator[Any]:
        self.collection.warn(f"item skipped: {describe_failure(failure, self.options.timeout)}")
        yield from self.item_done()

    def item_done(self) -> Iterator[Any]:
        self.pending -= 1
        if self.pending == 0:
            yield from self.after_page()

    # bookkeeping
    def warn_encoding(self, url: str, uncertain: str | None) -> None:
        """Warn once a run that pages are read in a guessed encoding (set ``encoding``)."""
        if uncertain and not self.encoding_warned:
            self.encoding_warned = True
            self.collection.warn(
                f"encoding of {url} is uncertain: read as {uncertain} "
                "(set `encoding` if that is wrong)"
            )

    def emit(self, item: Item) -> Iterator[Post]:
        posts = item_posts(item, self.options.url)
        ident = posts[0].native_id
        self.seen.append(ident)
        if self.options.has_answers and not item.answer:
            self.still_waiting.append(ident)
        if item.date and (self.newest is None or item.date > self.newest):
            self.newest = item.date
        yield from posts

    def _is_stored(self, ident: str, date: datetime | None) -> bool:
        """Stored by an earlier run and not newer than the cursor."""
        if ident not in self.known_seen:
            return False
        return date is None or (self.known_newest is not None and date <= self.known_newest)

    def _older(self, date: datetime | None) -> bool:
        return bool(date and self.known_newest and date < self.known_newest)


def _parse_iso(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _ctype(response: Any) -> str | None:
    value = response.headers.get(b"Content-Type")
    return value.decode("latin-1") if value else None
