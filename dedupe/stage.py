"""The near-duplicate stage: find, for each post, the recent posts it copies.

For every post of a batch the stage sets ``Post.duplicate_of``: keys ``(platform, native_id)``
of earlier posts it duplicates, best first, at most one per case. An explicit repost link
(VK ``copy_history``, a Telegram forward: ``repost_of``) comes first and is taken on trust;
then a verbatim copy of the normalised text; then candidates from the LSH index confirmed by
:func:`dedupe.score.similarity`. Storage joins the post to the case of those posts and merges
cases that the post links.

A batch goes through in five steps, the per-post work in C or numpy wherever it can be:
normalise each post (regexes); sign the whole batch (numpy); probe the LSH buckets for the
whole batch, each post meeting the posts before it (numpy, :mod:`dedupe.buckets`); drop hopeless
candidate pairs of the whole batch (numpy: lengths the scorer cannot bridge, numbers that
cannot agree, too few shared MinHash values); confirm the rest with rapidfuzz, post by post,
best candidates first, against the posts before it (those of the batch too).

The index of recent posts lives in memory and is kept in step with the inbox through a
``recent`` callable (``Inbox.recent_posts``): the first call loads the window's posts, each
later call reads only rows changed since (by ``seq``), so posts stored by another process or
moved between cases are seen before the next batch is matched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np
from rapidfuzz import fuzz

from crawler.model import Post
from dedupe.index import PostKey, RecentIndex
from dedupe.normalise import match_words
from dedupe.settings import DedupeSettings
from dedupe.signature import Signer
from storage.inbox import StoreResult

# (seq, platform, native_id, cluster_id, text, at POSIX seconds) of stored posts changed after
# ``after_seq`` (all posts in the window when ``after_seq`` is 0), and the inbox's last seq.
Recent = Callable[[int, float], tuple[int, Iterable[tuple[Any, ...]]]]
CHECKS_PER_CASE = 2
MIN_AGREE = 5
"""Least number of the 16 MinHash values a candidate must share with the post to be scored:
band collisions of unrelated texts share 2-4 (common words), copies 8-16. Recall on the
bench's 20k sample by this value: 4: 0.980, 5: 0.976, 6: 0.966, 7: 0.961, 8: 0.947; 4 makes
half again as many rapidfuzz checks as 5."""
SET_FLOOR = 50
"""token_set_ratio is tried only on pairs whose token_sort_ratio is at least this: when the
subset rule accepts a pair, its sorted texts score at least ~59 (the common words are a common
subsequence); none of 5,299 such pairs in bench/dedupe.py's 100k run scored below 55, and the
floor spares more than half of the token_set_ratio calls, which are the slowest part."""
CHUNK = 2000  # stored rows signed at a time when rebuilding (numpy's arrays stay in cache)


class NearDuplicates:
    """A pipeline stage (a callable on a batch of posts) with its index of recent posts."""

    # Run inside the write transaction (crawler.pipeline.Ingest.flush): the index catches up
    # with every post stored before, whichever process stored it.
    under_write_lock: ClassVar[bool] = True

    def __init__(self, settings: DedupeSettings | None = None, recent: Recent | None = None):
        self.settings = settings or DedupeSettings()  # type: ignore[call-arg]  # pydantic defaults
        self.window = self.settings.window.total_seconds()
        self.signer = Signer()
        self.index = RecentIndex(self.window, self.signer.hashes, self.signer.band_keys)
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
        index = self.index
        by_key, text_hash, groups = index.by_key, index.text_hash, index.groups
        fresh: list[tuple[Any, ...]] = []
        count = 0
        for _seq, platform, native_id, cluster_id, text, at in rows:
            count += 1
            row = by_key.get((platform, native_id))
            if row is not None and text_hash[row] == hash(text):
                if cluster_id is not None:
                    groups[row] = cluster_id
                continue
            fresh.append(((platform, native_id), text, at, cluster_id))
        empty = not len(index.buckets)  # a fresh index: the buckets are built at the end
        for start in range(0, len(fresh), CHUNK):
            self._index_stored(fresh[start : start + CHUNK], probe=not empty)
        if empty and fresh:
            index.rebuild()
        if index.due():
            index.purge()
        self.seq = max(self.seq, last)
        return count

    def stored(self, result: StoreResult) -> None:
        """Learn the cases of the posts just stored from ``store``'s result instead of reading
        them back, when nothing else was written since the index last caught up."""
        if result.cases is None or result.seq_before != self.seq:
            return
        by_key, groups = self.index.by_key, self.index.groups
        for key, cluster_id in result.cases.items():
            row = by_key.get(key)
            if row is not None:
                groups[row] = cluster_id
        self.seq = result.seq_after

    def _index_stored(self, rows: list[tuple[Any, ...]], probe: bool) -> None:
        """Add stored posts to the index (to its buckets too when ``probe``)."""
        index = self.index
        cutoff = index.newest - self.window
        min_chars = self.settings.min_chars
        now = time.time()
        keys, ordered, times, groups, hashes = [], [], [], [], []
        for key, text, at, cluster_id in rows:
            at = float(at) if at is not None else now
            if at < cutoff:
                continue
            sorted_words = " ".join(sorted(match_words(text)))
            if len(sorted_words) < min_chars:
                row = index.by_key.get(key)
                if row is not None:
                    index.remove(row)
                continue
            keys.append(key)
            ordered.append(sorted_words)
            times.append(at)
            groups.append(cluster_id if cluster_id is not None else index.new_group())
            hashes.append(hash(text))
        if not keys:
            return
        signed = self.signer.sign(ordered)
        first = index.append(keys, ordered, signed, np.array(times), groups, hashes)
        if probe:
            index.probe(first, len(keys))

    # -- matching a batch -----------------------------------------------------------------
    def link(self, posts: list[Post]) -> None:
        """Set ``duplicate_of`` on every post and add the posts to the index.

        The batch is signed, probed and filtered at once; posts are then confirmed in order,
        each against the index as it was after the posts before it (those of the batch too).
        """
        settings, index = self.settings, self.index
        by_key, text_hash_of = index.by_key, index.text_hash
        min_chars = settings.min_chars
        todo: list[Post] = []
        keys: list[PostKey] = []
        ordered: list[str] = []
        hashes: list[int] = []
        for post in posts:
            repost = post.repost_of
            post.duplicate_of = [(post.platform, repost)] if repost else None
            if not settings.enabled:
                continue
            key = (post.platform, post.native_id)
            text_hash = hash(post.text)
            row = by_key.get(key)
            if row is not None and text_hash_of[row] == text_hash:
                continue  # collected again with the same text: its case is known
            sorted_words = " ".join(sorted(match_words(post.text)))
            if len(sorted_words) >= min_chars:
                todo.append(post)
                keys.append(key)
                ordered.append(sorted_words)
                hashes.append(text_hash)
            elif row is not None:
                index.remove(row)  # edited down to a few words
        if not todo:
            return
        now = time.time()
        times = np.array([p.published_at.timestamp() if p.published_at else now for p in todo])
        signed = self.signer.sign(ordered)
        first = index.append(keys, ordered, signed, times, [0] * len(todo), hashes)
        # (the groups are set below, once each post is matched)
        queries, found, copies = index.probe(first, len(todo))
        bounds, candidates, subset, numbered = self._filter(first, len(todo), queries, found)
        for j, post in enumerate(todo):
            row = first + j
            copy = copies.get(row)
            start, end = bounds[j], bounds[j + 1]
            if copy is not None:
                self._link_one(post, row, {index.group(copy): (100.0, index.keys[copy])})
            elif start == end:
                self._link_one(post, row, {})
            else:
                pairs = slice(start, end)
                matches = self._confirm(row, candidates[pairs], subset[pairs], numbered[pairs])
                self._link_one(post, row, matches)
        if index.due():
            index.purge()

    def _filter(
        self, first: int, rows: int, queries: np.ndarray, found: np.ndarray
    ) -> tuple[list[int], list[int], list[bool], list[bool]]:
        """The candidates worth scoring of rows ``first … first + rows - 1`` (pairs
        ``queries[i], found[i]``): where each row's start, then all of them, best first,
        whether the subset guard allows token_set_ratio and whether numbers must be compared
        for each."""
        settings = self.settings
        queries, candidates, subset, numbered = self.index.candidates(
            queries,
            found,
            threshold=settings.threshold,
            subset_min_words=settings.subset_min_words,
            subset_length_ratio=settings.subset_length_ratio,
            min_agree=MIN_AGREE,
        )
        bounds = np.searchsorted(queries, np.arange(first, first + rows + 1))
        return bounds.tolist(), candidates.tolist(), subset.tolist(), numbered.tolist()

    def _link_one(self, post: Post, row: int, matches: dict[int, tuple[float, PostKey]]) -> None:
        """Link ``post`` to the best post of every case it matches (``matches``: case → best
        (score, key)), merge those cases in memory and give its row its case."""
        index = self.index
        links = post.duplicate_of
        if matches:
            ranked = sorted(matches.items(), key=_best_first)
            links = list(links or [])
            links += [key for _, (_, key) in ranked if key not in links]
            post.duplicate_of = links
            group = ranked[0][0]
            for other, _ in ranked[1:]:
                index.merge(group, other)
        else:
            linked = index.by_key.get(links[0]) if links else None
            group = index.group(linked) if linked is not None else index.new_group()
        index.groups[row] = group

    def _confirm(
        self, row: int, candidates: list[int], subset: list[bool], numbered: list[bool]
    ) -> dict[int, tuple[float, PostKey]]:
        """Score the candidates, best first (at most ``CHECKS_PER_CASE`` per case,
        ``max_checks`` in all); return the first that reaches the threshold in each case
        (case → (score, key)).

        This loop runs for every post: :func:`dedupe.score.sorted_similarity` is inlined,
        with ``subset[i]`` the subset guard of candidate ``i`` (computed in numpy) and
        ``numbered[i]`` whether either text has numbers (which must then agree).
        """
        index, settings = self.index, self.settings
        groups, merged = index.groups, index.merged_groups
        words, keys, numbers, numbers_of = index.words, index.keys, index.numbers, index.numbers_of
        ordered = words[row]
        mine = None
        budget = settings.max_checks
        threshold = settings.threshold
        floor = min(threshold, SET_FLOOR)
        checked: dict[int, int] = {}
        matches: dict[int, tuple[float, PostKey]] = {}
        ratio, token_set = fuzz.ratio, fuzz.token_set_ratio
        for other_row, set_allowed, with_numbers in zip(candidates, subset, numbered, strict=True):
            group = groups[other_row]
            if group in merged:
                group = index.group(other_row)
            done = checked.get(group, 0)
            if done >= CHECKS_PER_CASE or group in matches:
                continue
            if with_numbers:
                if mine is None:
                    mine = numbers_of(row)
                other = numbers[other_row]
                if other is None:
                    other = numbers_of(other_row)
                if not (mine <= other or other <= mine):
                    continue  # different addresses: not a check
            checked[group] = done + 1
            budget -= 1
            self.checks += 1
            other_words = words[other_row]
            if set_allowed:
                score = ratio(ordered, other_words, score_cutoff=floor)
                if score and score < threshold:
                    score = token_set(ordered, other_words, score_cutoff=threshold)
            else:
                score = ratio(ordered, other_words, score_cutoff=threshold)
            if score:
                matches[group] = (score, keys[other_row])
            if budget <= 0:
                break
        return matches


def _best_first(item: tuple[int, tuple[float, PostKey]]) -> float:
    return -item[1][0]
