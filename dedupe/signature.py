"""MinHash signatures and LSH band keys of normalised texts, a whole batch at a time.

A text's shingles are its distinct words (a polynomial hash of their code points, the same
in every process). Each of ``bands * rows`` hash functions is a multiply-shift hash of the
shingle; the minimum over the text's
shingles is one signature value. ``rows`` values make one band key; two texts sharing any band
key are candidates. With Jaccard similarity J the chance of that is ``1 - (1 - J**rows) **
bands``: 0.97 at J = 0.6 and 0.90 at J = 0.5 with the defaults (8 bands of 2). Measured
against exhaustive scoring (bench/dedupe.py) 8x2 finds as many similar pairs as 20x3 or 12x2
at twice their speed: fewer bands mean fewer dictionary operations per post.

The whole signature (16 values) is kept: the share of values two texts agree on estimates
their Jaccard similarity, which lets the index drop most band-collision candidates in one
numpy expression before any of them is scored with rapidfuzz.

The batch is hashed with numpy in one go (no Python call per word or hash function), so
signing costs one or two microseconds a text.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

BANDS = 8
ROWS = 2
_SEED = 20261126
_BASE = 0x9E3779B97F4A7C15  # odd: invertible modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 2**64)


class Signed(NamedTuple):
    """What signing a batch of texts gives, one row per text."""

    signatures: np.ndarray  # (texts, bands * rows) uint32
    words: np.ndarray  # words per text (repeats counted)
    number_bits: np.ndarray  # uint64: bit ``n % 61`` set for every number n in the text


class Signer:
    """Computes MinHash signatures and LSH band keys for lists of word lists."""

    def __init__(self, bands: int = BANDS, rows: int = ROWS, seed: int = _SEED) -> None:
        rng = np.random.default_rng(seed)
        self.bands, self.rows = bands, rows
        self.hashes = count = bands * rows
        self.mul = rng.integers(1, 2**63, size=count, dtype=np.uint64) | np.uint64(1)
        self.add = rng.integers(0, 2**63, size=count, dtype=np.uint64)
        self.mix = rng.integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
        self.band_salt = np.arange(bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        self._pow = self._inv = np.ones(0, dtype=np.uint64)

    def sign(self, texts: list[str]) -> Signed:
        """MinHash signatures of normalised texts (words separated by single spaces; every
        text has at least one word), with their word counts and number sketches.

        The whole batch is hashed in numpy: its texts are joined and encoded once, each
        word's hash is a polynomial over its code points, read off prefix sums (no Python
        call per word). A repeated word gives the same hash, so it counts once, as in a set.
        """
        count = len(texts)
        if not count:
            return Signed(
                np.zeros((0, self.hashes), dtype=np.uint32),
                np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.uint64),
            )
        codes = np.frombuffer(("\n".join(texts) + "\n").encode("utf-32-le"), dtype=np.uint32)
        newlines = np.flatnonzero(codes == 10)
        edges = np.diff((codes > 32).view(np.int8), prepend=np.int8(0))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        first_word = np.searchsorted(np.searchsorted(newlines, starts), np.arange(count + 1))
        word_counts = np.diff(first_word)
        if not word_counts.all():
            raise ValueError("cannot sign a text without words")
        powers, inverse = self._powers(len(codes))
        prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        np.cumsum(codes * powers[: len(codes)], out=prefix[1:])
        words = (prefix[ends] - prefix[starts]) * inverse[starts]
        with np.errstate(over="ignore"):
            values = (words[:, None] * self.mul + self.add) >> np.uint64(32)
        signatures = np.minimum.reduceat(values, first_word[:-1], axis=0).astype(np.uint32)
        return Signed(signatures, word_counts, _number_bits(codes, newlines, count))

    def _powers(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """``BASE**k`` and ``BASE**-k`` modulo 2**64 for ``k < length`` (grown as needed)."""
        if len(self._pow) < length:
            size = max(length, 2 * len(self._pow))
            self._pow, self._inv = np.ones(size, dtype=np.uint64), np.ones(size, dtype=np.uint64)
            np.cumprod(np.full(size - 1, _BASE, dtype=np.uint64), out=self._pow[1:])
            np.cumprod(np.full(size - 1, _BASE_INVERSE, dtype=np.uint64), out=self._inv[1:])
        return self._pow, self._inv

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """``bands`` keys (uint64) per signature row."""
        grouped = signatures.astype(np.uint64).reshape(len(signatures), self.bands, self.rows)
        with np.errstate(over="ignore"):
            return (grouped * self.mix).sum(axis=2, dtype=np.uint64) ^ self.band_salt


_TEN = np.array([pow(10, k, 61) for k in range(60)], dtype=np.int64)  # 10**k mod 61
_TENTH = np.array([pow(10, -k, 61) for k in range(60)], dtype=np.int64)  # 10**-k mod 61


def _number_bits(codes: np.ndarray, newlines: np.ndarray, count: int) -> np.ndarray:
    """Per text, bit ``n % 61`` set for every number n (run of digits) in it.

    A run's value modulo 61 comes from prefix sums of ``digit * 10**-position`` (10 is
    invertible modulo 61, and its powers repeat every 60): no Python call per number.
    """
    bits = np.zeros(count, dtype=np.uint64)
    at = np.flatnonzero((codes >= 48) & (codes <= 57))  # where the digits are
    if not len(at):
        return bits
    starts = np.flatnonzero(np.diff(at, prepend=-2) != 1)  # runs, as indices into ``at``
    ends = np.r_[starts[1:], len(at)]
    prefix = np.zeros(len(at) + 1, dtype=np.int64)
    np.cumsum((codes[at].astype(np.int64) - 48) * _TENTH[at % 60], out=prefix[1:])
    values = (_TEN[at[ends - 1] % 60] * ((prefix[ends] - prefix[starts]) % 61)) % 61
    run_bits = np.uint64(1) << values.astype(np.uint64)
    text = np.searchsorted(newlines, at[starts])
    first = np.flatnonzero(np.r_[True, text[1:] != text[:-1]])
    bits[text[first]] = np.bitwise_or.reduceat(run_bits, first)
    return bits
