"""The near-duplicate stage: find, for each post, the recent posts it copies.

For every post of a batch the stage sets ``Post.duplicate_of``: keys ``(platform, native_id)``
of earlier posts it duplicates, best first, at most one per case. An explicit repost link
(VK ``copy_history``, a Telegram forward: ``repost_of``) comes first and is taken on trust;
then a verbatim copy of the normalised text; then candidates from the LSH index confirmed by
:func:`dedupe.score.similarity`. Storage joins the post to the case of those posts and merges
cases that the post links.

The index of recent posts lives in memory and is kept in step with the inbox through a
``recent`` callable (``Inbox.recent_posts``): the first call loads the window's posts, each
later call reads only rows changed since (by ``seq``), so posts stored by another process or
moved between cases are seen before the next batch is matched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rapidfuzz import fuzz

from crawler.model import Post
from dedupe.index import PostKey, RecentIndex
from dedupe.normalise import normalise_for_match, numbers
from dedupe.score import sort_words, subset_allowed
from dedupe.settings import DedupeSettings
from dedupe.signature import Signer

# (seq, platform, native_id, cluster_id, text, at POSIX seconds) of stored posts changed after
# ``after_seq`` (all posts in the window when ``after_seq`` is 0), and the inbox's last seq.
Recent = Callable[[int, float], tuple[int, Iterable[tuple[Any, ...]]]]
CHECKS_PER_CASE = 2


class NearDuplicates:
    """A pipeline stage (a callable on a batch of posts) with its index of recent posts."""

    def __init__(self, settings: DedupeSettings | None = None, recent: Recent | None = None):
        self.settings = settings or DedupeSettings()
        self.window = self.settings.window.total_seconds()
        self.index = RecentIndex(self.window)
        self.signer = Signer()
        self.recent = recent
        self.seq = 0
        self.checks = 0  # rapidfuzz confirmations made (for the bench)

    def __call__(self, posts: list[Post]) -> list[Post]:
        if self.settings.enabled:  # disabled: repost links only, no index to keep
            self.catch_up()
        self.link(posts)
        return posts

    # -- keeping up with the inbox --------------------------------------------------------
    def catch_up(self) -> int:
        """Index stored posts changed since the last call; return how many rows were read."""
        if self.recent is None:
            return 0
        last, rows = self.recent(self.seq, self.window)
        fresh: list[tuple[Any, ...]] = []
        count = 0
        for _seq, platform, native_id, cluster_id, text, at in rows:
            count += 1
            entry = self.index.by_key.get((platform, native_id))
            if entry is not None and entry.text_hash == hash(text):
                entry.group = cluster_id if cluster_id is not None else entry.group
                continue
            fresh.append(((platform, native_id), text, at, cluster_id))
        self._index_stored(fresh)
        self.seq = max(self.seq, last)
        return count

    def _index_stored(self, rows: list[tuple[Any, ...]]) -> None:
        cutoff = self.index.newest - self.window
        normals = []
        kept = []
        for key, text, at, cluster_id in rows:
            at = float(at) if at is not None else time.time()
            if at < cutoff:
                continue
            normal = normalise_for_match(text)
            if len(normal) < self.settings.min_chars:
                entry = self.index.by_key.get(key)
                if entry is not None:
                    self.index.remove(entry)
                continue
            normals.append(normal)
            kept.append((key, normal, at, cluster_id, hash(text)))
        for (key, normal, at, cluster_id, text_hash), bands in zip(
            kept, self.signer.band_keys(normals), strict=True
        ):
            group = cluster_id if cluster_id is not None else self.index.new_group()
            entry = (key, sort_words(normal), numbers(normal), at, group, text_hash)
            self.index.add(entry, bands)

    # -- matching a batch -----------------------------------------------------------------
    def link(self, posts: list[Post]) -> None:
        """Set ``duplicate_of`` on every post and add the posts to the index."""
        todo = []
        for post in posts:
            explicit = [(post.platform, post.repost_of)] if post.repost_of else []
            post.duplicate_of = explicit or None
            if not self.settings.enabled:
                continue
            entry = self.index.by_key.get(post.key)
            if entry is not None and entry.text_hash == hash(post.text):
                continue  # collected again with the same text: its case is known
            normal = normalise_for_match(post.text)
            if len(normal) >= self.settings.min_chars:
                todo.append((post, normal))
            elif entry is not None:
                self.index.remove(entry)  # edited down to a few words
        if not todo:
            return
        for (post, normal), bands in zip(
            todo, self.signer.band_keys([n for _, n in todo]), strict=True
        ):
            self._link_one(post, normal, bands)

    def _link_one(self, post: Post, normal: str, bands: list[int]) -> None:
        index = self.index
        nums = numbers(normal)
        ordered = sort_words(normal)
        matches: dict[int, tuple[float, PostKey]] = {}  # case → best (score, key)
        exact = index.exact.get(ordered)
        if exact is not None and exact.key != post.key:
            matches[index.group(exact)] = (100.0, exact.key)
        else:
            self._confirm(post.key, ordered, nums, bands, matches)
        ranked = sorted(matches.items(), key=_best_first)
        links = list(post.duplicate_of or [])
        links += [key for _, (_, key) in ranked if key not in links]
        post.duplicate_of = links or None
        if ranked:
            group = ranked[0][0]
            for other, _ in ranked[1:]:
                index.merge(group, other)
        else:
            linked = index.by_key.get(links[0]) if links else None
            group = index.group(linked) if linked is not None else index.new_group()
        at = post.published_at.timestamp() if post.published_at else time.time()
        index.add((post.key, ordered, nums, at, group, hash(post.text)), bands)

    def _confirm(
        self,
        key: PostKey,
        ordered: str,
        nums: frozenset[str],
        bands: list[int],
        matches: dict[int, tuple[float, PostKey]],
    ) -> None:
        """Score the best LSH candidates (at most ``CHECKS_PER_CASE`` per case, ``max_checks``
        in all); record the first that reaches the threshold in each case.

        This loop runs for every post: :func:`dedupe.score.sorted_similarity` is inlined.
        """
        index, settings = self.index, self.settings
        merged = index.merged_groups
        budget = settings.max_checks
        threshold = settings.threshold
        checked: dict[int, int] = {}
        ratio, token_set = fuzz.ratio, fuzz.token_set_ratio
        for entry in index.candidates(bands, key, budget * CHECKS_PER_CASE):
            group = entry.group
            if group in merged:
                group = index.group(entry)
            done = checked.get(group, 0)
            if done >= CHECKS_PER_CASE or group in matches:
                continue
            checked[group] = done + 1
            budget -= 1
            other = entry.numbers
            if nums <= other or other <= nums:
                self.checks += 1
                words = entry.words
                score = ratio(ordered, words, score_cutoff=threshold)
                if not score and subset_allowed(ordered, words, settings):
                    score = token_set(ordered, words, score_cutoff=threshold)
                if score:
                    matches[group] = (score, entry.key)
            if budget <= 0:
                break


def _best_first(item: tuple[int, tuple[float, PostKey]]) -> float:
    return -item[1][0]
