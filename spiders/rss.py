"""RSS and Atom feeds: a Scrapy spider fetches (conditional GET), feedparser parses."""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urljoin

import feedparser
from pydantic import Field, field_validator

from crawler.model import Checkpoint, Post, SourceConfig, SourceInfo
from crawler.validators import http_address
from spiders.base import GlasSpider


class Options(SourceConfig):
    """An RSS 2.0, RSS 1.0 or Atom feed."""

    platform: ClassVar[str] = "rss"

    type: Literal["rss"]
    url: str = Field(..., description="Address of the feed (http or https).")
    max_pages: int = Field(
        1,
        ge=1,
        le=100,
        description='Follow the feed\'s rel="next" links (RFC 5005 paged feeds) up to this many '
        "pages on a first run; later runs stop at entries already collected.",
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        return http_address(value, "url")


_HTML_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]",
    re.IGNORECASE | re.DOTALL,
)


@dataclass
class ParsedFeed:
    """What one feed document holds.

    ``problem`` says why the document is not a well-formed feed (None when it is);
    ``is_feed`` is False when it is no feed at all (an HTML page, say).
    """

    title: str | None
    posts: list[Post]
    next_url: str | None
    problem: str | None
    is_feed: bool


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse a feed document into Posts (pure: no network)."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=True)
    problem = None
    exc = parsed.get("bozo_exception")
    # Encoding and content-type notices (ThingsNobodyCaresAboutButMe) are not malformation.
    if parsed.get("bozo") and not isinstance(exc, feedparser.ThingsNobodyCaresAboutButMe):
        problem = f"{type(exc).__name__}: {exc}" if exc else "malformed feed"
    posts = [entry_to_post(entry, url) for entry in parsed.entries]
    next_url = next(
        (
            urljoin(url, link["href"])
            for link in parsed.feed.get("links", [])
            if link.get("rel") == "next" and link.get("href")
        ),
        None,
    )
    is_feed = bool(parsed.get("version")) or bool(posts)
    if not is_feed and _looks_like_html(body, content_type):
        problem = "the server sent an HTML page, not a feed"
    return ParsedFeed(
        title=parsed.feed.get("title") or None,
        posts=posts,
        next_url=next_url,
        problem=problem,
        is_feed=is_feed,
    )


def _looks_like_html(body: bytes, content_type: str | None) -> bool:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml") or bool(_HTML_START.match(body[:2048]))


def entry_to_post(entry: Any, feed_url: str) -> Post:
    """One feed entry as a Post; text and title may still hold HTML (the pipeline cleans it)."""
    link = entry.get("link")
    summary = entry.get("summary") or ""
    contents = [c.get("value", "") for c in entry.get("content", []) if c.get("value")]
    body = max([summary, *contents], key=len)
    native_id = entry.get("id") or link
    if not native_id:
        digest = hashlib.sha1(f"{entry.get('title', '')}\n{body}".encode()).hexdigest()
        native_id = f"sha1:{digest}"
    # dict.get: FeedParserDict.get("updated_parsed") silently falls back to published_parsed
    # (with a DeprecationWarning), which would hide a missing <updated>.
    published = _utc(dict.get(entry, "published_parsed"))
    updated = _utc(dict.get(entry, "updated_parsed"))
    published = published or updated
    author = entry.get("author_detail", {}).get("name") or entry.get("author")
    return Post(
        platform="rss",
        native_id=str(native_id),
        kind="post",
        url=urljoin(feed_url, link) if link else None,
        title=entry.get("title") or None,
        author_name=author or None,
        text=body,
        published_at=published,
        edited_at=updated if updated and published and updated > published else None,
        raw=_raw(entry),
    )


def _utc(value: Any) -> datetime | None:
    """feedparser's struct_time (always UTC) as an aware datetime."""
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), UTC)


def _raw(entry: Any) -> dict[str, Any]:
    """The entry's own fields, JSON-safe, for provenance."""
    keep = ("id", "link", "title", "summary", "published", "updated", "author")
    raw: dict[str, Any] = {k: entry[k] for k in keep if isinstance(dict.get(entry, k), str)}
    if entry.get("content"):
        raw["content"] = [c.get("value") for c in entry["content"]]
    if entry.get("tags"):
        raw["tags"] = [t.get("term") for t in entry["tags"] if t.get("term")]
    enclosures = [
        {"href": e.get("href"), "type": e.get("type")} for e in entry.get("enclosures", [])
    ]
    if enclosures:
        raw["enclosures"] = enclosures
    return raw


class Spider(GlasSpider):
    """Fetch a feed with the stored ETag / Last-Modified; a 304 is a successful empty run.

    The cursor (``etag``, ``modified``, ``newest``) is saved only with the last page, so a
    run cut short is redone in full next time (re-storing entries is harmless).
    """

    name = "rss"
    handle_httpstatus_list: ClassVar[list[int]] = [304]

    async def start(self) -> Any:
        self.fresh: dict[str, str | None] = {}  # validators of page 1, saved with the last page
        self.pages_seen: set[str] = {self.options.url}
        self.newest: datetime | None = None
        headers = {}
        if self.cursor.get("etag"):
            headers["If-None-Match"] = self.cursor["etag"]
        if self.cursor.get("modified"):
            headers["If-Modified-Since"] = self.cursor["modified"]
        yield self.request(
            self.options.url, headers=headers, callback=self.parse_page, cb_kwargs={"page": 1}
        )

    def parse_page(self, response: Any, page: int) -> Iterator[Any]:
        if response.status == 304:
            yield Checkpoint(self.cursor)
            return
        if page == 1:
            self.fresh = {
                "etag": _header(response, b"ETag"),
                "modified": _header(response, b"Last-Modified"),
            }
        self.pages_seen.add(response.url)
        feed = parse_feed(response.body, response.url, _header(response, b"Content-Type"))
        if not feed.is_feed:
            raise self.fail(
                f"not an RSS or Atom feed at {response.url}: "
                f"{feed.problem or 'no channel, feed or entry elements'}"
            )
        if not feed.posts and feed.problem:
            raise self.fail(f"malformed feed at {response.url}, no entry readable ({feed.problem})")
        if feed.problem:
            self.collection.warn(
                f"malformed feed at {response.url} ({feed.problem}); "
                f"{len(feed.posts)} entries read anyway"
            )
        if page == 1 and feed.title:
            yield SourceInfo(title=feed.title, url=self.options.url)
        yield from feed.posts
        dates = [p.published_at for p in feed.posts if p.published_at]
        newest = max(dates, default=None)
        known = self.cursor.get("newest")
        self.newest = max(filter(None, [self.newest, newest]), default=None)
        reached_known = bool(known and newest and newest.isoformat() <= known)
        # A next link back to a page already read (a loop) ends the feed: Scrapy's duplicate
        # filter would drop the request silently and the final checkpoint would never come.
        next_url = feed.next_url if feed.next_url not in self.pages_seen else None
        if next_url and page < self.options.max_pages and not reached_known:
            self.pages_seen.add(next_url)
            yield Checkpoint(self.cursor)
            yield self.request(next_url, callback=self.parse_page, cb_kwargs={"page": page + 1})
            return
        newest_text = self.newest.isoformat() if self.newest else None
        yield Checkpoint(
            {**self.fresh, "newest": max(filter(None, [newest_text, known]), default=None)}
        )


def _header(response: Any, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None
