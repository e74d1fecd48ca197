"""Selectors, decoding and URLs for the ``html`` source type (pure: no network).

A selector in sources.yaml is XPath when it starts with ``/``, ``./``, ``(`` or the prefix
``xpath:``; otherwise it is CSS (the prefix ``css:`` makes that explicit). CSS may use
parsel's ``::text`` and ``::attr(name)``. Field selectors are relative to the item: an XPath
``//a`` is read as ``.//a``.
"""

from __future__ import annotations

import codecs
import re
from functools import cache
from typing import NamedTuple
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from cssselect import SelectorError
from parsel import Selector, SelectorList

from crawler.normalize import clean_whitespace, plain_text
from spiders.charsets import declared_by_server, read_as

_WHITESPACE = re.compile(r"\s+")
_XPATH_START = ("/", "./", "(", "..")
_PROBE = Selector(text="<html><body><div><a href='/'>x</a></div></body></html>")
TRACKING_PARAMS = frozenset(
    {
        "yclid",
        "ysclid",
        "gclid",
        "fbclid",
        "_openstat",
        "mc_cid",
        "mc_eid",
        "clear_cache",  # Bitrix: no other content
        "bxajaxid",
        "sphrase_id",
        "phpsessid",
        "sessid",
    }
)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE
)


class PageProblem(Exception):
    """A fetched page cannot be read (empty, truncated); the message says what and where."""


@cache
def compile_selector(text: str, *, relative: bool = False) -> tuple[str, str]:
    """``(kind, expression)`` for a selector string; ValueError when it is not valid."""
    value = text.strip()
    if not value:
        raise ValueError("the selector is empty")
    lowered = value.lower()
    if lowered.startswith("xpath:"):
        kind, expr = "xpath", value[6:].strip()
    elif lowered.startswith("css:"):
        kind, expr = "css", value[4:].strip()
    elif value.startswith(_XPATH_START):
        kind, expr = "xpath", value
    else:
        kind, expr = "css", value
    if not expr:
        raise ValueError(f"the selector {text!r} has nothing after its prefix")
    if kind == "xpath" and relative and expr.startswith("/"):
        expr = "." + expr
    try:
        if kind == "css":
            _PROBE.css(expr)
        else:
            _PROBE.xpath(expr)
    except SelectorError as exc:
        raise ValueError(f"bad CSS selector {value!r}: {exc}") from None
    except ValueError as exc:
        detail = str(exc).split(" in ", 1)[0].removeprefix("XPath error: ")
        raise ValueError(f"bad XPath selector {value!r}: {detail.lower()}") from None
    return kind, expr


def check_selector(value: str | None) -> str | None:
    """A pydantic validator body: the selector unchanged, or ValueError."""
    if value is not None:
        compile_selector(value)
    return value


def select(node: Selector, text: str, *, relative: bool = True) -> SelectorList:
    kind, expr = compile_selector(text, relative=relative)
    return node.css(expr) if kind == "css" else node.xpath(expr)


def text_of(match: Selector) -> str:
    """Plain text of one match: an element's text (line breaks kept) or a string's value."""
    if isinstance(match.root, str):
        return clean_whitespace(match.root)
    html = match.get()
    if "<pre" not in html:  # source line breaks are spaces, as a browser shows them
        html = _WHITESPACE.sub(" ", html)
    return plain_text(html)


def first_text(node: Selector, text: str | None) -> str | None:
    """The first non-empty text the selector finds, as one line."""
    if not text:
        return None
    for match in select(node, text):
        value = text_of(match).replace("\n", " ")
        if value:
            return clean_whitespace(value)
    return None


def all_text(node: Selector, text: str | None) -> str | None:
    """Every match's text: strings joined by spaces, elements as paragraphs."""
    if not text:
        return None
    matches = select(node, text)
    if not matches:
        return None
    if all(isinstance(m.root, str) for m in matches):
        joined = clean_whitespace(" ".join(m.root for m in matches))
    else:
        joined = "\n\n".join(filter(None, (text_of(m) for m in matches)))
    return clean_whitespace(joined) or None


def first_link(node: Selector, text: str | None) -> str | None:
    """The first address the selector finds: a string, or an element's (or its link's) href."""
    if not text:
        return None
    for match in select(node, text):
        if isinstance(match.root, str):
            value = match.root.strip()
        else:
            value = match.attrib.get("href") or match.xpath("string(.//a[@href][1]/@href)").get()
            value = (value or "").strip()
        if value and not value.lower().startswith(("javascript:", "mailto:", "tel:", "#")):
            return value
    return None


def absolute_url(base: str, href: str) -> str | None:
    """``href`` made absolute against ``base``, canonical (see :func:`canonical_url`)."""
    joined = urljoin(base, href.strip())
    if not joined.lower().startswith(("http://", "https://")):
        return None
    return canonical_url(joined)


def canonical_url(url: str) -> str:
    """The URL without its fragment and tracking parameters (utm_*, yclid, Bitrix noise),
    scheme and host in lower case, default port dropped; other parameters keep their order."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and (parts.scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    if parts.username:
        host = f"{parts.username}{':' + parts.password if parts.password else ''}@{host}"
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and not _is_tracking(unquote(pair.split("=", 1)[0]).lower())
    ]
    query = "&".join(kept)
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", query, ""))


def _is_tracking(key: str) -> bool:
    return key.startswith("utm_") or key in TRACKING_PARAMS


def check_encoding(value: str | None) -> str | None:
    """A pydantic validator body: a Python codec name, or ValueError."""
    if value is None:
        return None
    try:
        return codecs.lookup(value).name
    except LookupError:
        raise ValueError(
            f"unknown encoding {value!r} (use a name like windows-1251, utf-8, koi8-r)"
        ) from None


class Decoded(NamedTuple):
    """A page's text, the encoding it was read in, and whether that was a sure choice."""

    text: str
    encoding: str
    sure: bool = True


def decode_html(
    body: bytes, header_charset: str | None = None, override: str | None = None
) -> Decoded:
    """The text of an HTML page.

    ``override`` (the source's ``encoding``) wins. Otherwise a byte-order mark; then UTF-8
    when the body is valid UTF-8 (text in windows-1251 practically never is, so a wrong
    charset header or meta tag cannot garble a UTF-8 page); then the ``<meta>`` charset
    (written by the site's CMS, more often right than the server's header) and the header's
    charset (unless a server default such as ISO-8859-1) when they read about as well as
    the best guess of :func:`spiders.charsets.read_as`, else that guess (KOI8-R, cp866, …;
    windows-1251 first among equals).
    """
    if override:
        return Decoded(body.decode(override, errors="replace"), override)
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return Decoded(body.decode(name, errors="replace"), name)
    meta = _META_CHARSET.search(body[:4096])
    declared = [
        meta.group(1).decode("ascii", "replace") if meta else None,
        declared_by_server(header_charset),
    ]
    reading = read_as(body, declared)
    return Decoded(body.decode(reading.encoding, errors="replace"), reading.encoding, reading.sure)


def read_page(
    body: bytes, url: str, header_charset: str | None, override: str | None
) -> tuple[Selector, str | None]:
    """The page as a parsel Selector, and the encoding it was read in when that was an
    unsure guess (None otherwise); PageProblem when it is empty or cut short."""
    if not body.strip():
        raise PageProblem(f"empty page at {url} (no content)")
    text, encoding, sure = decode_html(body, header_charset, override)
    lowered = text.lower()
    opened = "<html" in lowered or "<body" in lowered
    if opened and "</html" not in lowered and "</body" not in lowered:
        raise PageProblem(
            f"truncated HTML at {url}: the page ends before </body></html> ({len(body)} bytes)"
        )
    return Selector(text=text, base_url=url), None if sure else encoding
