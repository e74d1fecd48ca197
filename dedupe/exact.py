"""Exact-duplicate key: posts whose normalised text is equal belong to one case."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from crawler.model import Post

MIN_KEY_CHARS = 20
"""Texts shorter than this after normalisation get no key: a bare «Спасибо!» under a
hundred posts is a hundred separate remarks, not one case."""

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_for_key(text: str) -> str:
    """Lower case, ё→е, links and punctuation removed, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower().replace("ё", "е")
    if "http" in text or "www." in text:  # (lower case by now) a link's start
        text = _URL.sub(" ", text)
    return _NON_WORD.sub(" ", text).strip()


def text_key(text: str) -> str | None:
    """A short digest of the normalised text, or None when the text is too short."""
    normal = normalise_for_key(text)
    if len(normal) < MIN_KEY_CHARS:
        return None
    return hashlib.blake2b(normal.encode(), digest_size=12).hexdigest()


def add_exact_keys(posts: list[Post]) -> list[Post]:
    """Pipeline stage: set ``dedupe_key`` on every post."""
    for post in posts:
        post.dedupe_key = text_key(post.text)
    return posts
