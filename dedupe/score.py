"""Confirming a candidate pair: how alike two normalised texts are, 0-100.

``token_sort_ratio`` forgives swapped words, typos and small additions. ``token_set_ratio``
also forgives a prefix, a remark or a cut tail, but returns 100 whenever one text's words are
a subset of the other's, so it is used only when the shorter text has at least
``subset_min_words`` words and ``subset_length_ratio`` of the longer one's length: a two-word
comment never swallows a long post. Texts that mention different numbers (house, flat, route)
where neither set contains the other are different cases whatever their wording.
"""

from __future__ import annotations

from rapidfuzz import fuzz

from dedupe.settings import DedupeSettings


def numbers_agree(a: frozenset[str], b: frozenset[str]) -> bool:
    """True when one text's numbers include the other's (a cut tail may lose some)."""
    return a <= b or b <= a


def subset_allowed(a: str, b: str, settings: DedupeSettings) -> bool:
    """Whether ``token_set_ratio`` may judge the pair (the subset guard)."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if not long or len(short) < settings.subset_length_ratio * len(long):
        return False
    return short.count(" ") + 1 >= settings.subset_min_words


def sort_words(normal: str) -> str:
    """The words sorted: ``token_sort_ratio(a, b)`` is ``ratio`` of these (computed once)."""
    return " ".join(sorted(normal.split()))


def similarity(a: str, b: str, settings: DedupeSettings, cutoff: float = 0) -> float:
    """Similarity of two normalised texts (numbers are checked by the caller)."""
    return sorted_similarity(sort_words(a), sort_words(b), settings, cutoff)


def sorted_similarity(a: str, b: str, settings: DedupeSettings, cutoff: float = 0) -> float:
    """:func:`similarity` of texts whose words are already sorted.

    ``token_sort_ratio``; when that is below ``cutoff`` (or 100) and the subset guard allows
    it, the better of it and ``token_set_ratio`` (which ignores word order, so sorted texts
    give the same score). Scores below ``cutoff`` come back as 0.
    """
    score = fuzz.ratio(a, b, score_cutoff=cutoff)
    if score < (cutoff or 100) and subset_allowed(a, b, settings):
        score = max(score, fuzz.token_set_ratio(a, b, score_cutoff=cutoff))
    return score
