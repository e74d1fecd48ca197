"""Normalise posts from any collector: plain text, tidy whitespace, UTC times."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, tzinfo

from bs4 import BeautifulSoup, Comment, MarkupResemblesLocatorWarning

from crawler.model import Post

_TAG = re.compile(
    r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9-]*(\s[^<>]*)?/?\s*>|&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);"
)
# Blocks stand apart (a blank line between paragraphs); list items and rows are one line each.
_BLOCK_TAGS = [
    "p",
    "div",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "table",
    "section",
    "article",
    "pre",
]
_LINE_TAGS = ["li", "tr", "dt", "dd"]
_SPACE = r"\t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000"  # spaces other than " "
# Runs of spaces to make one " ": those with another space than " ", and "  " or longer (a
# lone " " is left alone, which makes the substitution quicker on ordinary text).
_SPACES = re.compile(rf"[{_SPACE}][ {_SPACE}]*| [ {_SPACE}]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_LINE_EDGES = re.compile(r"[^\S\n]*\n[^\S\n]*")  # what str.strip() takes off each line's ends
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")  # HTML's whitespace (not NBSP: that one is kept)


def looks_like_html(text: str) -> bool:
    return ("<" in text or "&" in text) and _TAG.search(text) is not None


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: line breaks for <br> and blocks, links as their text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    for node in soup.find_all(string=True):  # as a browser: source line breaks are spaces
        if not isinstance(node, Comment) and node.find_parent(["pre", "textarea"]) is None:
            node.replace_with(_HTML_SPACE.sub(" ", node))
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(_BLOCK_TAGS):
        block.insert_before("\n")
        block.insert_after("\n")
    for line in soup.find_all(_LINE_TAGS):
        line.insert_before("\n")
    return soup.get_text()


def clean_whitespace(text: str) -> str:
    """One space between words, no blank runs longer than one empty line, no edge space."""
    text = _SPACES.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    if "\n" in text:
        text = _LINE_EDGES.sub("\n", text)
        if "\n\n\n" in text:
            text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def plain_text(text: str | None) -> str:
    if not text:
        return ""
    if looks_like_html(text):
        text = html_to_text(text)
    return clean_whitespace(text)


def to_utc(value: datetime | None, zone: tzinfo) -> datetime | None:
    """Aware UTC datetime; naive times are read in the source's zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC).replace(microsecond=0)


def normalise(post: Post, zone: tzinfo) -> Post:
    """Normalise one post in place and return it.

    Title and text are read as HTML unless the post marks them plain (``plain_fields``).
    """
    as_text = {
        name: clean_whitespace if name in post.plain_fields else plain_text
        for name in ("title", "text")
    }
    post.text = as_text["text"](post.text or "")
    if post.title is not None:
        post.title = clean_whitespace(as_text["title"](post.title)).replace("\n", " ") or None
    if post.author_name is not None:
        post.author_name = clean_whitespace(post.author_name) or None
    post.published_at = to_utc(post.published_at, zone)
    post.edited_at = to_utc(post.edited_at, zone)
    post.answered_at = to_utc(post.answered_at, zone)
    return post
