"""RSS and Atom feeds: a Scrapy spider fetches (conditional GET), feedparser parses."""

from __future__ import annotations

import calendar
import codecs
import hashlib
import html.entities
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

import feedparser
from pydantic import Field, field_validator

from crawler.model import Checkpoint, Post, SourceConfig, SourceInfo
from crawler.validators import http_address
from spiders.base import GlasSpider
from spiders.charsets import charset_of, declared_by_server, read_as


class Options(SourceConfig):
    """An RSS 2.0, RSS 1.0 or Atom feed."""

    default_voice: ClassVar[str] = "editorial"  # the posts are the feed's or channel's own
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


_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)""")
_XML_ENCODING_TEXT = re.compile(r"""^(\s*<\?xml[^>]*?\bencoding\s*=\s*)(["'])[^"']*\2""")
_CDATA = re.compile(rb"(<!\[CDATA\[.*?\]\]>)", re.DOTALL)
_NAMED_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})


@dataclass
class ParsedFeed:
    """What one feed document holds.

    ``problem`` says why the document is not a well-formed feed (None when it is);
    ``is_feed`` is False when it is no feed at all (an HTML page, say);
    ``uncertain_encoding`` names the encoding the document was read in when that was a
    guess with a close rival (None when declared, UTF-8 or clear).
    """

    title: str | None
    posts: list[Post]
    next_url: str | None
    problem: str | None
    is_feed: bool
    uncertain_encoding: str | None = None


def parse_feed(
    body: bytes, url: str, content_type: str | None = None, *, feed_url: str | None = None
) -> ParsedFeed:
    """Parse a feed document into Posts (pure: no network).

    ``url`` is the document's address (relative links resolve against it); ``feed_url`` the
    source's configured address, which scopes entry ids (see :func:`entry_id`; default
    ``url``).
    """
    parsed, uncertain = _read(body, url, content_type)
    problem = None
    exc = parsed.get("bozo_exception")
    # Encoding and content-type notices (ThingsNobodyCaresAboutButMe) are not malformation.
    if parsed.get("bozo") and not isinstance(exc, feedparser.ThingsNobodyCaresAboutButMe):
        problem = f"{type(exc).__name__}: {exc}" if exc else "malformed feed"
    scope = id_scope(feed_url or url)
    posts = _distinct_ids([entry_to_post(entry, url, scope) for entry in parsed.entries])
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
        uncertain_encoding=uncertain,
    )


def _read(body: bytes, url: str, content_type: str | None) -> tuple[Any, str | None]:
    """feedparser's reading of the document, in the right encoding and past HTML entities;
    also the encoding when it was an unsure guess.

    feedparser decodes by the declarations and falls back to windows-1252, so an undeclared
    windows-1251 or KOI8-R feed would come out garbled: a document with non-ASCII bytes is
    decoded as :func:`spiders.charsets.read_as` says and handed over as UTF-8. HTML entities
    such as ``&laquo;`` are not XML (feedparser would call the feed malformed): they are
    written as character references.
    """
    uncertain = None
    bom = body.startswith(codecs.BOM_UTF8)  # feedparser reads it so
    ascii_markup = _ascii_markup(body.removeprefix(codecs.BOM_UTF8))
    if ascii_markup and not bom and not body.isascii():
        declared = _XML_ENCODING.match(body[:1024])
        reading = read_as(
            body,
            [
                declared_by_server(charset_of(content_type)),
                declared.group(1).decode() if declared else None,
            ],
        )
        text = body.decode(reading.encoding, errors="replace")
        body = _XML_ENCODING_TEXT.sub(r"\1\2utf-8\2", text, count=1).encode("utf-8")
        content_type = f"{(content_type or 'application/xml').split(';', 1)[0]}; charset=utf-8"
        uncertain = None if reading.sure else reading.encoding
    if ascii_markup:
        body = _html_entities_as_references(body)
    return _feedparser(body, url, content_type), uncertain


def _ascii_markup(body: bytes) -> bool:
    """Whether the document's markup is in ASCII bytes (not UTF-16/32 or EBCDIC, which
    feedparser recognises by their byte-order marks or by how ``<?xml`` looks in them)."""
    head = body[:1024]
    return head.lstrip()[:1] == b"<" and b"\x00" not in head


def _feedparser(body: bytes, url: str, content_type: str | None) -> Any:
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    return feedparser.parse(body, response_headers=headers, sanitize_html=True)


def _html_entities_as_references(body: bytes) -> bytes:
    """HTML named entities (``&laquo;``) outside CDATA sections as ``&#171;``; XML's own five
    and unknown names stay as they are."""

    def reference(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode("ascii")
        text = html.entities.html5.get(f"{name};")
        if name in _XML_ENTITIES or text is None:
            return match.group(0)
        return "".join(f"&#{ord(char)};" for char in text).encode("ascii")

    parts = _CDATA.split(body)
    return b"".join(
        part if part.startswith(b"<![CDATA[") else _NAMED_ENTITY.sub(reference, part)
        for part in parts
    )


def _looks_like_html(body: bytes, content_type: str | None) -> bool:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml") or bool(_HTML_START.match(body[:2048]))


def entry_to_post(entry: Any, page_url: str, scope: str | None = None) -> Post:
    """One feed entry as a Post; text and title may still hold HTML (the pipeline cleans it),
    except where the feed says they are plain text (``plain_fields``).

    ``page_url`` resolves relative links; ``scope`` (default: ``page_url``'s) scopes the id.
    """
    link = entry.get("link")
    title = entry.get("title") or None
    # The longest of content and summary (content first: feedparser copies a lone content
    # into summary, without its type).
    body, body_type = max(
        [
            *((c["value"], c.get("type")) for c in entry.get("content", []) if c.get("value")),
            (entry.get("summary") or "", dict.get(entry, "summary_detail", {}).get("type")),
        ],
        key=lambda pair: len(pair[0]),
    )
    plain = []
    if title and dict.get(entry, "title_detail", {}).get("type") == "text/plain":
        plain.append("title")
    if body and body_type == "text/plain":
        plain.append("text")
    # dict.get: FeedParserDict.get("updated_parsed") silently falls back to published_parsed
    # (with a DeprecationWarning), which would hide a missing <updated>.
    published = _utc(dict.get(entry, "published_parsed"))
    updated = _utc(dict.get(entry, "updated_parsed"))
    published = published or updated
    author = entry.get("author_detail", {}).get("name") or entry.get("author")
    raw = _raw(entry)
    return Post(
        platform="rss",
        native_id=entry_id(raw, scope or id_scope(page_url)),
        kind="post",
        url=urljoin(page_url, link) if link else None,
        title=title,
        author_name=author or None,
        text=body,
        published_at=published,
        edited_at=updated if updated and published and updated > published else None,
        raw=raw,
        plain_fields=tuple(plain),
    )


def id_scope(feed_url: str) -> str:
    """What scopes a feed's own entry ids: its address, ``http://`` written as ``https://``
    (a feed moving to https keeps its ids)."""
    if feed_url[:7].lower() == "http://":
        return "https://" + feed_url[7:]
    return feed_url


def entry_id(raw: dict[str, Any], scope: str) -> str:
    """The post id of an entry (``raw`` as :func:`_raw` gives it).

    A guid (or, without one, a link) that is an absolute http(s) address is the id as it is:
    an address names one page, so two feeds announcing it announce one item; but a site's
    home page names no item (broken feeds link every entry to it). Any other guid (``123``,
    ``tag:…``, ``urn:uuid:…``) is unique only within its feed: ``<scope>#<guid>``.
    An entry with neither is ``<scope>#sha1:<digest>`` of all its own fields (title, texts,
    dates, author, tags, enclosures), never of its position, which changes as entries are
    added; entries equal in all of them cannot be told apart and are one post.
    """
    ident = (raw.get("id") or raw.get("link") or "").strip()
    if ident and is_item_address(ident):
        return ident
    if ident:
        return f"{scope}#{ident}"
    return f"{scope}#sha1:{_digest(raw)}"


def is_item_address(value: str) -> bool:
    """An absolute http(s) URL with a host (no spaces) and more than the site's root."""
    parts = urlsplit(value)
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(parts.netloc)
        and " " not in value
        and bool(parts.path.strip("/") or parts.query or parts.fragment)
    )


def _distinct_ids(posts: list[Post]) -> list[Post]:
    """Entries of one document that share an id but differ get ``#sha1:<digest>`` appended
    (each, whatever its position); entries equal in every field stay one post."""
    groups: defaultdict[str, list[Post]] = defaultdict(list)
    for post in posts:
        groups[post.native_id].append(post)
    for group in groups.values():
        digests = [_digest(post.raw or {}) for post in group]
        if len(set(digests)) > 1:
            for post, digest in zip(group, digests, strict=True):
                post.native_id = f"{post.native_id}#sha1:{digest}"
    return posts


def _digest(raw: dict[str, Any]) -> str:
    text = json.dumps(raw, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()


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
        feed = parse_feed(
            response.body,
            response.url,
            _header(response, b"Content-Type"),
            feed_url=self.options.url,
        )
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
        if feed.uncertain_encoding:
            self.collection.warn(
                f"encoding of {response.url} is uncertain: read as {feed.uncertain_encoding}"
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
