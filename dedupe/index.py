"""The index of recent posts: LSH buckets over MinHash band keys, bounded by a time window.

Every indexed post is a *row*: numbers in numpy arrays (signature, length, word count,
number sketch, time, liveness), the rest in plain lists (key, sorted normalised words, case,
text hash; its numbers, computed when first compared). The buckets (:mod:`dedupe.buckets`)
give, for a batch of rows, the rows sharing a band key with each, at most the newest
``BUCKET_CAP`` per key (a phrase every third post shares would otherwise make lookups
linear). An exact map finds copies (the same words) without scoring.

:meth:`RecentIndex.candidates` takes the band-collision candidates of a whole batch of posts
and drops, in one numpy expression, those that cannot or will hardly reach the threshold:
lengths too far apart for the scorer, numbers that cannot agree, or signatures agreeing on
fewer than ``min_agree`` of their values (their words' Jaccard similarity is far too low).
Only the rest are scored.

Replaced rows die at once, rows older than the newest time minus the window when the index
has doubled since the last purge; once a quarter of the rows are dead the purge compacts
the arrays and rebuilds the buckets, so memory follows the window, not the history.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dedupe.buckets import Buckets
from dedupe.normalise import numbers
from dedupe.signature import Signed

BUCKET_CAP = 16
LENGTH, WORDS, NUMBERS = 0, 1, 2  # columns of ``RecentIndex.meta``
PostKey = tuple[str, str]
BandKeys = Callable[[np.ndarray], np.ndarray]  # signatures → band keys, one row each


class RecentIndex:
    """Recent posts by band key, exact words and post key."""

    def __init__(self, window_seconds: float, hashes: int, band_keys: BandKeys) -> None:
        if hashes % 8 or not 0 < hashes < 256:
            raise ValueError("signatures must have a multiple of 8 values, fewer than 256")
        self.window = window_seconds
        self.band_keys = band_keys
        self.rows = 0  # rows used (live and dead)
        capacity = 1024
        bands = band_keys(np.zeros((1, hashes), dtype=np.uint32)).shape[1]
        self.buckets = Buckets(bands, BUCKET_CAP, capacity)
        self.sig = np.zeros((capacity, hashes), dtype=np.uint32)
        self.at = np.zeros(capacity, dtype=np.float64)  # POSIX seconds
        # Characters of the sorted words, words, a 61-bit sketch of the numbers: side by side,
        # as the candidate filter reads them together (one memory read per row).
        self.meta = np.zeros((capacity, 4), dtype=np.int64)
        self.alive = np.zeros(capacity, dtype=bool)
        self.keys: list[PostKey] = []
        self.words: list[str] = []  # normalised words, sorted (what scoring needs)
        self.numbers: list[frozenset[str] | None] = []  # computed when first needed
        self.groups: list[int] = []  # a stored cluster id, or a negative id not stored yet
        self.text_hash: list[int] = []  # of the original text: recognises unchanged posts
        self.by_key: dict[PostKey, int] = {}
        self.exact: dict[str, int] = {}
        self.newest = float("-inf")
        self._next_group = -1
        self.merged_groups: dict[int, int] = {}  # groups merged in memory (union-find)
        self._purged_at = 0  # rows used after the last purge

    def __len__(self) -> int:
        return len(self.by_key)

    # -- groups ---------------------------------------------------------------------------
    def new_group(self) -> int:
        self._next_group -= 1
        return self._next_group

    def group(self, row: int) -> int:
        """The row's case, following in-memory merges."""
        group = self.groups[row]
        if group not in self.merged_groups:
            return group
        path = []
        while group in self.merged_groups:
            path.append(group)
            group = self.merged_groups[group]
        for step in path:
            self.merged_groups[step] = group
        return group

    def merge(self, into: int, other: int) -> None:
        if into != other:
            self.merged_groups[other] = into

    # -- rows -----------------------------------------------------------------------------
    def append(
        self,
        keys: list[PostKey],
        words: list[str],
        signed: Signed,
        at: np.ndarray,
        groups: list[int],
        text_hashes: list[int],
    ) -> int:
        """Add rows (not yet in the buckets: see :meth:`probe`); return the first row id.

        ``words`` are the normalised words, sorted; ``signed`` what the signer made of them.
        A row replaces the live row of the same key, which is dropped at once.
        """
        count = len(keys)
        first = self.rows
        self._reserve(first + count)
        end = first + count
        self.sig[first:end] = signed.signatures
        self.buckets.keys[first:end] = self.band_keys(signed.signatures)
        meta = self.meta[first:end]
        meta[:, LENGTH] = np.fromiter(map(len, words), dtype=np.int64, count=count)
        meta[:, WORDS] = signed.words
        meta[:, NUMBERS] = signed.number_bits.view(np.int64)
        self.alive[first:end] = True
        self.at[first:end] = at
        self.keys += keys
        self.words += words
        self.numbers += [None] * count
        self.groups += groups
        self.text_hash += text_hashes
        self.rows = end
        by_key = self.by_key
        for row, key in enumerate(keys, first):
            old = by_key.get(key)
            if old is not None:
                self.remove(old)
            by_key[key] = row
        if count and at.max() > self.newest:
            self.newest = float(at.max())
        return first

    def _reserve(self, rows: int) -> None:
        capacity = len(self.alive)
        if rows <= capacity:
            return
        capacity = max(rows, capacity * 2)
        self.sig = _grown(self.sig, capacity)
        self.meta = _grown(self.meta, capacity)
        self.alive = _grown(self.alive, capacity)
        self.at = _grown(self.at, capacity)
        self.buckets.reserve(capacity)

    def numbers_of(self, row: int) -> frozenset[str]:
        """The numbers in a row's text."""
        found = self.numbers[row]
        if found is None:
            found = self.numbers[row] = numbers(self.words[row])
        return found

    def remove(self, row: int) -> None:
        """Forget a row (its bucket slots are dropped at the next purge)."""
        if not self.alive[row]:
            return
        self.alive[row] = False
        key = self.keys[row]
        if self.by_key.get(key) == row:
            del self.by_key[key]
        if self.exact.get(self.words[row]) == row:
            del self.exact[self.words[row]]

    def probe(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        """Put rows ``first … first + count - 1`` in the buckets and the exact map, in order,
        each meeting the rows before it (those of the batch too). Returns the pairs found
        (query rows, rows found; one per shared band key) and the rows that are verbatim
        copies of a live row of another key (row → that row): their pairs are left out.
        """
        exact, words, keys, alive = self.exact, self.words, self.keys, self.alive
        copies: dict[int, int] = {}
        for row in range(first, first + count):
            hit = exact.get(words[row])
            if hit is not None and alive[hit] and keys[hit] != keys[row]:
                copies[row] = hit
            exact[words[row]] = row
        self.buckets.chain(first, count)
        queries, found = self.buckets.lookup(first, count)
        if copies:
            keep = np.ones(count, dtype=bool)
            keep[np.fromiter(copies, dtype=np.int64, count=len(copies)) - first] = False
            mask = keep[queries - first]
            queries, found = queries[mask], found[mask]
        return queries, found, copies

    def due(self) -> bool:
        """Whether enough rows were added since the last purge to purge again."""
        return self.rows - self._purged_at > max(20_000, self._purged_at)

    def purge(self) -> None:
        """Drop rows older than the window; when a quarter of the rows are dead, compact the
        arrays and rebuild the buckets and maps (all in numpy or C loops)."""
        used = slice(0, self.rows)
        expired = self.alive[used] & (self.at[used] < self.newest - self.window)
        keep = np.flatnonzero(self.alive[used] & ~expired)
        if len(keep) > 0.75 * self.rows:  # few dead rows: forget the expired ones, one by one
            for row in np.flatnonzero(expired).tolist():
                self.remove(row)
            self._purged_at = self.rows
            return
        self.buckets.compact(keep)
        self.sig = self.sig[keep]
        self.meta = self.meta[keep]
        self.alive = self.alive[keep]
        self.at = self.at[keep]
        rows = keep.tolist()
        self.keys = [self.keys[r] for r in rows]
        self.words = [self.words[r] for r in rows]
        self.numbers = [self.numbers[r] for r in rows]
        self.groups = [self.groups[r] for r in rows]
        self.text_hash = [self.text_hash[r] for r in rows]
        self.rows = self._purged_at = len(rows)
        self.by_key = dict(zip(self.keys, range(self.rows), strict=True))
        self.rebuild()

    def rebuild(self) -> None:
        """Rebuild the buckets and the exact map from the live rows (as if each had been
        probed in turn)."""
        live = np.flatnonzero(self.alive[: self.rows])
        if len(live) == self.rows:  # (after a compaction)
            self.exact = dict(zip(self.words, range(self.rows), strict=True))
        else:
            rows = live.tolist()
            self.exact = dict(zip([self.words[r] for r in rows], rows, strict=True))
        self.buckets.rebuild(live)

    # -- candidates -----------------------------------------------------------------------
    def candidates(
        self,
        queries: np.ndarray,
        found: np.ndarray,
        *,
        threshold: float,
        subset_min_words: int,
        subset_length_ratio: float,
        min_agree: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Filter candidate pairs ``(queries[i], found[i])`` (row ids, same length).

        Keeps live pairs whose lengths allow the scorer to reach ``threshold``, whose numbers
        may agree (by their sketches, ``Signed.number_bits``) and whose signatures agree on
        at least ``min_agree`` values. Returns them as query rows, candidate rows, whether
        the subset guard allows token_set_ratio and whether the numbers must be compared
        (either text has some), sorted by query, then most agreeing values, then newest
        candidate.
        """
        if not len(found):
            return found, found, found.astype(bool), found.astype(bool)
        code = (queries << 32) | found
        code.sort()
        code = code[np.r_[True, code[1:] != code[:-1]]]  # one pair per (query, candidate)
        queries, found = code >> 32, code & 0xFFFFFFFF
        a, b = self.meta.take(queries, axis=0), self.meta.take(found, axis=0)
        a_len, b_len = a[:, LENGTH], b[:, LENGTH]
        short, long = np.minimum(a_len, b_len), np.maximum(a_len, b_len)
        # ratio = 200 * LCS / (la + lb) <= 200 * short / (short + long)
        sortable = short * (200 - threshold) >= threshold * long - 1e-9
        short_words = np.where(a_len <= b_len, a[:, WORDS], b[:, WORDS])
        subset = (short >= subset_length_ratio * long) & (short_words >= subset_min_words)
        a_bits, b_bits = a[:, NUMBERS], b[:, NUMBERS]
        numbers_may_agree = ((a_bits & ~b_bits) == 0) | ((b_bits & ~a_bits) == 0)
        numbered = (a_bits | b_bits) != 0
        keep = np.flatnonzero(self.alive.take(found) & (sortable | subset) & numbers_may_agree)
        agree = _agreeing(self.sig.take(queries[keep], axis=0), self.sig.take(found[keep], axis=0))
        keep = keep[agree >= min_agree]
        agree = agree[agree >= min_agree]
        order = keep[np.lexsort((-found[keep], -agree, queries[keep]))]
        return queries[order], found[order], subset[order], numbered[order]


_BYTES = np.uint64(0x0101010101010101)


def _agreeing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, how many values of ``a`` and ``b`` are equal (rows of a multiple of 8 values,
    at most 255): the equality bytes are summed eight at a time in uint64 words, which is
    several times faster than ``(a == b).sum(axis=1)``."""
    equal = np.ascontiguousarray(a == b).view(np.uint64)
    total = equal[:, 0].copy()
    for column in range(1, equal.shape[1]):
        total += equal[:, column]
    with np.errstate(over="ignore"):
        return ((total * _BYTES) >> np.uint64(56)).astype(np.int64)


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
