"""Parse one page of a Telegram channel's web preview (``t.me/s/<channel>``) into Posts.

Pure functions, no network: :func:`parse_page` is what the ``telegram_web`` collector
(:mod:`spiders.telegram_web`) calls on each page it fetches. The markup is described in
PLATFORMS.md (section 2b) and follows a real saved page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

from lxml import etree
from parsel import Selector

from crawler.model import Post

_DATA_POST = re.compile(r"^(?P<channel>[A-Za-z0-9_]+)/(?P<id>\d+)$")
_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_VIEWS = re.compile(r"^(?P<number>\d+(?:[.,]\d+)?)\s*(?P<suffix>[KkMmBb]?)$")
_EDITED = re.compile(r"\b(?:edited|изменено)\b", re.IGNORECASE)
_BACKGROUND = re.compile(r"background-image:\s*url\(['\"]?(?P<url>[^'\")]+)['\"]?\)")
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_HTML_END = re.compile(rb"</html\s*>\s*$", re.IGNORECASE)
_MULTIPLIERS = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
_BLOCKS = {"blockquote", "pre", "div", "p"}


@dataclass
class ParsedPage:
    """What one web preview page holds.

    ``ids`` are every message id on the page (service messages included), ``before`` the
    ``data-before`` of the "older posts" link (None at the start of the channel),
    ``has_history`` False when the page has no message history (no such channel, or no
    preview), ``empty`` True for a channel without posts, ``truncated`` True when the HTML
    stops before ``</html>``.
    """

    title: str | None
    posts: list[Post]
    ids: list[int]
    before: int | None
    has_history: bool
    empty: bool
    truncated: bool
    service: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def oldest(self) -> int | None:
        return min(self.ids, default=self.before)

    @property
    def newest(self) -> int | None:
        return max(self.ids, default=None)


def parse_page(body: bytes | str, url: str, channel: str) -> ParsedPage:
    """Parse one ``/s/<channel>`` page into Posts (pure: no network)."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    text = body if isinstance(body, str) else body.decode("utf-8", errors="replace")
    page = Selector(text=text or "<html></html>")
    history = page.css("section.tgme_channel_history")
    title = _words(page.css(".tgme_channel_info_header_title ::text").getall())
    more = history.css("a.tme_messages_more[data-before]::attr(data-before)").get()
    parsed = ParsedPage(
        title=title,
        posts=[],
        ids=[],
        before=int(more) if more and more.isdigit() else None,
        has_history=bool(history) or bool(page.css(".tme_no_messages_found")),
        empty=bool(page.css(".tme_no_messages_found")),
        truncated=not _HTML_END.search(raw[-4096:]),
    )
    for message in history.css("div.tgme_widget_message[data-post]"):
        data_post = message.attrib["data-post"].strip()
        found = _DATA_POST.match(data_post)
        if not found:
            parsed.problems.append(f"message without a usable data-post ({data_post!r})")
            continue
        parsed.ids.append(int(found.group("id")))
        if "service_message" in message.attrib.get("class", "").split():
            parsed.service += 1
            continue
        parsed.posts.append(message_to_post(message, data_post, url))
    parsed.ids.sort()
    if channel and any(
        not p.native_id.lower().startswith(f"{channel.lower()}/") for p in parsed.posts
    ):
        parsed.problems.append(f"posts of another channel than @{channel} on {url}")
    return parsed


def message_to_post(message: Selector, data_post: str, page_url: str) -> Post:
    """One ``div.tgme_widget_message`` as a Post (text as plain text with newlines)."""
    owner, _, _ = data_post.partition("/")
    meta = message.css(".tgme_widget_message_footer .tgme_widget_message_meta")
    date_link = meta.css("a.tgme_widget_message_date")
    href = date_link.attrib.get("href")
    when = date_link.css("time::attr(datetime)").get()
    text_node = message.css(".tgme_widget_message_text.js-message_text")
    text = _plain(text_node[0].root) if text_node else ""
    signature = _words(meta.css(".tgme_widget_message_from_author ::text").getall())
    owner_name = _words(message.css(".tgme_widget_message_owner_name ::text").getall())
    views_text = _words(message.css(".tgme_widget_message_views ::text").getall())
    views = parse_views(views_text) if views_text else None
    edited = bool(meta) and bool(_EDITED.search(_meta_words(meta[0].root)))
    raw: dict[str, Any] = {"data_post": data_post}
    if views_text:
        raw["views"] = views_text
    if edited:
        raw["edited"] = True
    if signature:
        raw["signature"] = signature
    forwarded = _forwarded(message)
    if forwarded:
        raw["forwarded_from"] = forwarded
    reply = message.css("a.tgme_widget_message_reply::attr(href)").get()
    if reply:
        raw["reply_to"] = _tme_path(reply) or reply
    media = _media(message)
    if media:
        raw["media"] = media
    if message.css(".tgme_widget_message_grouped_wrap"):
        raw["album"] = True
    preview = _link_preview(message)
    if preview:
        raw["link_preview"] = preview
    links = _links(text_node[:1], page_url)
    if links:
        raw["links"] = links
    buttons = _links(message.css(".tgme_widget_message_inline_keyboard"), page_url)
    if buttons:
        raw["buttons"] = buttons
    return Post(
        platform="telegram",
        native_id=post_key(data_post),
        kind="post",
        url=urljoin(page_url, href) if href else urljoin(page_url, f"/{data_post}"),
        author_id=owner,
        author_name=signature or owner_name or None,
        text=text,
        published_at=_time(when),
        metrics={"views": views} if views is not None else {},
        geo=_geo(message),
        repost_of=_repost_of(forwarded),
        raw=raw,
    )


def parse_views(value: str) -> int | None:
    """``950`` → 950, ``1.2K`` → 1200, ``33.0K`` → 33000, ``1.1M`` → 1100000."""
    found = _VIEWS.match(value.strip())
    if not found:
        return None
    try:
        number = Decimal(found.group("number").replace(",", "."))
    except InvalidOperation:
        return None
    return int(number * _MULTIPLIERS[found.group("suffix").lower()])


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _plain(node: Any) -> str:
    """Text of an element as shown: ``<br>`` as newlines, links and emoji as their text."""
    parts: list[str] = []

    def walk(element: Any, pre: bool) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in ("script", "style") or element.tag is etree.Comment:
            return
        if tag == "br":
            parts.append("\n")
        else:
            block = tag in _BLOCKS and element is not node
            inside = pre or tag == "pre"
            if block:
                parts.append("\n")
            if element.text:
                parts.append(_html_text(element.text, inside))
            for child in element:
                walk(child, inside)
                if child.tail:
                    parts.append(_html_text(child.tail, pre))
            if block:
                parts.append("\n")

    walk(node, False)
    return _clean("".join(parts))


def _html_text(text: str, pre: bool) -> str:
    return text if pre else _HTML_SPACE.sub(" ", text)


def _clean(text: str) -> str:
    """One space between words, at most one empty line in a row, no edge space."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def _words(texts: list[str | None]) -> str | None:
    """Text nodes as one line (whitespace collapsed), or None when empty."""
    line = _SPACES.sub(" ", " ".join(t for t in texts if t)).split()
    return " ".join(line) or None


def _meta_words(meta: Any) -> str:
    """The footer's own words (``edited``), without the signature and the date."""
    words = [meta.text or ""]
    words += [child.tail or "" for child in meta]
    return " ".join(words)


def post_key(path: str) -> str:
    """``Channel/123`` → ``channel/123``: usernames ignore case, and so must post ids.

    The ``telegram`` type (MTProto) keys posts the same way, so one post collected both ways
    is one post in the inbox.
    """
    channel, slash, rest = path.partition("/")
    return f"{channel.lower()}{slash}{rest}"


def _tme_path(href: str) -> str | None:
    """``https://t.me/name/123`` → ``name/123`` (t.me links only)."""
    parts = urlsplit(href)
    if parts.netloc.lower() not in ("t.me", "www.t.me", "telegram.me"):
        return None
    path = parts.path.strip("/").removeprefix("s/")
    return path or None


def _forwarded(message: Selector) -> dict[str, str]:
    """Where a forward comes from: the name shown, the link, and what the link is: a post
    (``post``: ``channel/123``) or a profile (``username``, of a person, bot or channel)."""
    box = message.css(".tgme_widget_message_forwarded_from")
    if not box:
        return {}
    name_node = box.css(".tgme_widget_message_forwarded_from_name")
    name = _words(name_node.css("::text").getall()) if name_node else None
    found: dict[str, str] = {"name": name} if name else {}
    href = name_node.attrib.get("href") if name_node else None
    if href:
        found["url"] = href
        path = _tme_path(href)
        if path and _DATA_POST.match(path):
            found["post"] = post_key(path)
        elif path and _USERNAME.match(path):
            found["username"] = path.lower()
    author = _words(box.css(".tgme_widget_message_forwarded_from_author ::text").getall())
    if author:
        found["author"] = author
    return found


def _repost_of(forwarded: dict[str, str]) -> str | None:
    """``repost_of`` of a forward: the original post when the page links one, else the
    profile's username in lower case (as the ``telegram`` type stores it), else the name."""
    if not forwarded:
        return None
    return forwarded.get("post") or forwarded.get("username") or forwarded.get("name")


def _links(nodes: Selector | Any, page_url: str) -> list[dict[str, str]]:
    """Every link in ``nodes`` as ``{"text", "url"}`` (absolute), in page order. A hashtag's
    search link (``?q=%23…``) is left out: its address is the hashtag itself."""
    found = []
    for link in nodes.css("a[href]") if nodes else []:
        href = link.attrib["href"].strip()
        if not href or href.startswith("?q="):
            continue
        text = _words(link.css("::text").getall()) or ""
        found.append({"text": text, "url": urljoin(page_url, href)})
    return found


def _background(style: str | None) -> str | None:
    found = _BACKGROUND.search(style or "")
    return found.group("url") if found else None


def _media(message: Selector) -> list[dict[str, Any]]:
    """Kinds and links of the message's media, in page order (no file contents)."""
    items: list[dict[str, Any]] = []
    for node in message.css(
        "a.tgme_widget_message_photo_wrap, a.tgme_widget_message_video_player, "
        ".tgme_widget_message_roundvideo_player, "
        ".tgme_widget_message_document, .tgme_widget_message_voice_player, "
        ".tgme_widget_message_sticker, .tgme_widget_message_tgsticker, "
        "a.tgme_widget_message_location_wrap, .tgme_widget_message_poll"
    ):
        classes = node.attrib.get("class", "").split()
        item: dict[str, Any] = {}
        if "tgme_widget_message_photo_wrap" in classes:
            item = {"kind": "photo", "image": _background(node.attrib.get("style"))}
        elif "tgme_widget_message_video_player" in classes:
            thumb = node.css(".tgme_widget_message_video_thumb::attr(style)").get()
            duration = node.css(".message_video_duration::text").get()
            item = {"kind": "video", "image": _background(thumb), "duration": _words([duration])}
        elif "tgme_widget_message_roundvideo_player" in classes:
            thumb = node.css(".tgme_widget_message_roundvideo_thumb::attr(style)").get()
            duration = node.css(".tgme_widget_message_roundvideo_duration::text").get()
            item = {"kind": "round_video", "image": _background(thumb)}
            item["duration"] = _words([duration])
        elif "tgme_widget_message_document" in classes:
            item = _document(node)
        elif "tgme_widget_message_voice_player" in classes:
            duration = node.css(".tgme_widget_message_voice_duration::text").get()
            item = {"kind": "voice", "duration": _words([duration])}
        elif classes and classes[0] in (
            "tgme_widget_message_sticker",
            "tgme_widget_message_tgsticker",
        ):
            item = {"kind": "sticker"}
        elif "tgme_widget_message_location_wrap" in classes:
            item = {"kind": "location"}
        elif "tgme_widget_message_poll" in classes:
            question = _words(node.css(".tgme_widget_message_poll_question ::text").getall())
            options = [
                _words(option.css("::text").getall())
                for option in node.css(".tgme_widget_message_poll_option_text")
            ]
            item = {"kind": "poll", "question": question, "options": options}
        href = node.attrib.get("href") or node.xpath("ancestor::a[1]/@href").get()
        if href:
            item["href"] = href
            if href.endswith("?single"):
                item["post"] = _tme_path(href.removesuffix("?single"))
        items.append({k: v for k, v in item.items() if v})
    if not items and message.css(".message_media_not_supported"):
        items.append({"kind": "unsupported"})
    return items


def _document(node: Selector) -> dict[str, Any]:
    """A file: an audio file when its icon says so (``…_document_icon audio``, beside the
    title and the performer), else a document (title; the size is in ``…_extra``)."""
    wrap = node.xpath("ancestor::a[contains(@class, 'tgme_widget_message_document_wrap')][1]")
    icons = (wrap or node).css(".tgme_widget_message_document_icon::attr(class)").getall()
    title = _words(node.css(".tgme_widget_message_document_title ::text").getall())
    if any("audio" in icon.split() for icon in icons):
        performer = _words(node.css(".tgme_widget_message_document_extra ::text").getall())
        return {"kind": "audio", "title": title, "performer": performer}
    return {"kind": "document", "title": title}


def _link_preview(message: Selector) -> dict[str, str]:
    node = message.css("a.tgme_widget_message_link_preview")
    if not node:
        return {}
    found = {"url": node.attrib.get("href", "")}
    for key, css in (
        ("site", ".link_preview_site_name"),
        ("title", ".link_preview_title"),
        ("description", ".link_preview_description"),
    ):
        value = _plain(node.css(css)[0].root) if node.css(css) else ""
        if value:
            found[key] = value
    return {k: v for k, v in found.items() if v}


def _geo(message: Selector) -> dict[str, float] | None:
    """Coordinates of a location message (its map link's ``q=lat,lon``)."""
    href = message.css("a.tgme_widget_message_location_wrap::attr(href)").get()
    if not href:
        return None
    for value in parse_qs(urlsplit(href).query).get("q", []):
        try:
            lat, lon = (float(v) for v in value.split(","))
        except ValueError:
            continue
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            return {"lat": lat, "lon": lon}
    return None
