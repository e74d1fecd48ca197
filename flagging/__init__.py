"""Flagging: complaint score, topics, places and official-answer style of each post.

The pipeline calls ``stage(settings)`` once and applies the returned function to every batch
(after dedupe). Lexicons compile once per process and are shared by every stage built with the
same overrides.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from crawler.model import Post
from flagging import comment_model, learned
from flagging.lexicon import LexiconError
from flagging.rules import Flagger, Flags
from flagging.settings import FlaggingSettings

__all__ = [
    "Flagger",
    "FlaggingSettings",
    "Flags",
    "LexiconError",
    "apply",
    "check",
    "flagger",
    "stage",
]

_FLAGGERS: dict[tuple[tuple[str, ...], float, int | None, str, bool], Flagger] = {}


def flagger(
    overrides: Iterable[str | Path] = (),
    threshold: float = 0.5,
    max_topics: int | None = None,
    topic_model: str = "auto",
    comments: bool = True,
) -> Flagger:
    """The process-wide :class:`Flagger` for these override files and settings.

    ``topic_model``: "auto", "posts", "fallback", "blend" or "off"; ``comments``: whether the
    comment model judges residents' comments (see :class:`FlaggingSettings`).
    """
    key = (tuple(str(p) for p in overrides), threshold, max_topics, topic_model, comments)
    if key not in _FLAGGERS:
        model = learned.shipped() if topic_model != "off" else None
        judge = comment_model.shipped() if comments else None
        rules = Flagger(
            key[0],
            threshold=threshold,
            model=model,
            blend=topic_model == "blend",
            posts_first=topic_model == "posts",
            style=learned.shipped_style() if topic_model == "auto" else None,
            comment_model=judge,
        )
        if max_topics is not None:
            rules.max_topics = max_topics
        _FLAGGERS[key] = rules
    return _FLAGGERS[key]


def apply(post: Post, rules: Flagger) -> Post:
    """Set the flagging fields of ``post`` (municipality only when it has none)."""
    return _set(post, rules.flag_many(*([value] for value in _key(post)))[0])


def _key(post: Post) -> tuple[str, bool, bool, bool, str | None]:
    """What flags depend on: the text, an official author, a comment, an outlet's own post,
    the municipality (whose known streets are looked for)."""
    comment = post.kind == "comment"
    official = post.author_is_official
    editorial = post.editorial and not comment and not official
    return _text_of(post), official, comment, editorial, post.municipality


def _set(post: Post, flags: Flags) -> Post:
    post.complaint_score = flags.complaint_score
    post.is_complaint = flags.is_complaint
    post.topics = list(flags.topics)  # copies: the flags of a repeated text serve many posts
    post.topic_scores = dict(flags.topic_scores)
    post.places = [dict(place) for place in flags.places]
    if not post.municipality and flags.municipality:
        post.municipality = flags.municipality
    return post


def stage(
    settings: FlaggingSettings | None = None, base: Path | None = None
) -> Callable[[list[Post]], list[Post]]:
    """The pipeline stage: flags every post of a batch in place and returns the batch.

    ``base`` is the directory relative lexicon paths are read from (that of sources.yaml).
    Raises :class:`LexiconError` (one line naming the file) for a bad override file.
    """
    settings = settings or FlaggingSettings()
    if not settings.enabled:
        return _unchanged
    rules = flagger(
        settings.lexicon_paths(base),
        settings.threshold,
        settings.max_topics,
        settings.topic_model,
        settings.comment_model,
    )

    memory = Repeats()

    def flag_batch(posts: list[Post]) -> list[Post]:
        keys = [_key(post) for post in posts]
        known = memory.get(keys)
        todo = list(dict.fromkeys(key for key in keys if key not in known))
        if todo:
            flags = rules.flag_many(*(list(column) for column in zip(*todo, strict=True)))
            known.update(zip(todo, flags, strict=True))
            memory.put(known)
        for post, key in zip(posts, keys, strict=True):
            _set(post, known[key])
        return posts

    return flag_batch


REPEATS_KEPT = 10_000


class Repeats:
    """The flags of the last ``REPEATS_KEPT`` texts a stage flagged, so a text that comes again
    word for word (reposts, template complaints: a quarter of the real appeals repeat another)
    is flagged once. Flagging depends on the text, the author being official and the post
    being a comment only, so the flags are the same."""

    def __init__(self, size: int = REPEATS_KEPT) -> None:
        self.size = size
        self.flags: OrderedDict[tuple[str, bool, bool, bool, str | None], Flags] = OrderedDict()
        self.lock = threading.Lock()

    def get(
        self, keys: list[tuple[str, bool, bool, bool, str | None]]
    ) -> dict[tuple[str, bool, bool, bool, str | None], Flags]:
        with self.lock:
            found = {key: self.flags[key] for key in keys if key in self.flags}
            for key in found:
                self.flags.move_to_end(key)
        return found

    def put(self, flags: dict[tuple[str, bool, bool, bool, str | None], Flags]) -> None:
        with self.lock:
            self.flags.update(flags)
            while len(self.flags) > self.size:
                self.flags.popitem(last=False)


def check(settings: FlaggingSettings, base: Path | None = None) -> str | None:
    """One line saying what is wrong with the lexicon overrides, or None when they compile.

    For config checking; the compiled lexicons are kept for the stage (no second cost).
    """
    if not settings.enabled:
        return None
    try:
        flagger(
            settings.lexicon_paths(base),
            settings.threshold,
            settings.max_topics,
            settings.topic_model,
            settings.comment_model,
        )
    except LexiconError as exc:
        return str(exc)
    return None


def _unchanged(posts: list[Post]) -> list[Post]:
    return posts


def _text_of(post: Post) -> str:
    """The text to judge: a web post's title belongs to it (news headlines, appeal subjects)."""
    if post.title and post.platform in ("web", "rss") and post.title not in post.text:
        return f"{post.title}. {post.text}"
    return post.text
