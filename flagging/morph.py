"""Russian morphology with pymorphy3: one analyser per process, cached lemmas and word forms.

Lexicon entries are lemmas; :func:`forms` expands a lemma into every inflected form once, so
flagging a post needs only dictionary look-ups of its lower-cased words, not a parse per word.
"""

from __future__ import annotations

from functools import lru_cache

import pymorphy3

_ANALYZER: pymorphy3.MorphAnalyzer | None = None


def analyzer() -> pymorphy3.MorphAnalyzer:
    """The process-wide analyser (its dictionaries load once, ~0.1 s)."""
    global _ANALYZER
    if _ANALYZER is None:
        _ANALYZER = pymorphy3.MorphAnalyzer()
    return _ANALYZER


def fold(word: str) -> str:
    """Lower case with ё read as е, the form every look-up uses."""
    return word.lower().replace("ё", "е")


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    """The most likely normal form of ``word`` (folded)."""
    return fold(analyzer().parse(word)[0].normal_form)


@lru_cache(maxsize=20_000)
def forms(word: str, grammemes: frozenset[str] = frozenset()) -> frozenset[str]:
    """Every form of the lemma ``word`` (folded), optionally only those tagged ``grammemes``.

    A word the dictionary does not know as a lemma stands for itself only. Active participles
    ("текущий" of "течь") are left out unless asked for: they mostly read as adjectives.
    """
    word = fold(word)
    found: set[str] = set()
    for parse in analyzer().parse(word):
        if fold(parse.normal_form) != word:
            continue
        for form in parse.lexeme:
            grams = form.tag.grammemes
            if grammemes:
                if grammemes <= grams:
                    found.add(fold(form.word))
            elif not {"PRTF", "actv"} <= grams:  # "текущий" is no form of "течь" to a reader
                found.add(fold(form.word))
    if not grammemes:
        found.add(word)
    return frozenset(found)


@lru_cache(maxsize=50_000)
def tags(word: str) -> frozenset[str]:
    """Grammemes of any parse of ``word`` (e.g. Surn, Geox, ADJF): used to judge place names."""
    out: set[str] = set()
    for parse in analyzer().parse(word)[:3]:
        out |= set(parse.tag.grammemes)
    return frozenset(out)


@lru_cache(maxsize=50_000)
def inflect(word: str, grammemes: frozenset[str], part: str | None = None) -> str:
    """``word`` put into ``grammemes`` (e.g. nominative), or left as it is when that fails.

    ``part`` (e.g. ``ADJF``) picks the first parse of that part of speech.
    """
    for parse in analyzer().parse(word)[:4]:
        if part is not None and part != parse.tag.POS:
            continue
        changed = parse.inflect(set(grammemes))
        if changed is not None:
            return changed.word
    return word.lower()


@lru_cache(maxsize=1_000)
def gender(noun: str) -> str:
    """Grammatical gender of ``noun`` (masc, femn, neut), or "" when unknown."""
    parse = analyzer().parse(noun)[0]
    return parse.tag.gender or ""
