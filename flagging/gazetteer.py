"""Known streets of each municipality (``places.streets`` of the lexicons): a bare mention of a
known street followed by a house number ("Пестеля 19", "на тележной 13", "Малой Конюшенной 9")
is an address, even where the name alone could not be told from an ordinary word.

Street names are given as officially written ("улица Пестеля", "Гороховая улица", "улица
Танкиста Хрустицкого"); the street-type word is dropped, an adjective is found in any of its
forms, other words as written (any case). Only a mention followed by a house number counts:
"правды" alone is a word, "Правды 3" an address.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flagging import morph
from flagging.lexicon import LexiconError

_WORD = re.compile(r"[а-яё]+(?:-[а-яё]+)*")
_BEFORE_NUMBER = re.compile(r"\s*,?\s*(?:д\.\s*|дом\s+)?(?=\d)")


class Gazetteer:
    """Streets by municipality, looked up by the last word of their name."""

    def __init__(self, streets: Any, street_types: frozenset[str]) -> None:
        if streets is None:
            streets = {}
        if not isinstance(streets, dict):
            raise LexiconError("places.streets: must map a municipality to a list of streets")
        self.towns: dict[str, dict[str, list[tuple[tuple[str, ...], str]]]] = {}
        for town, names in streets.items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise LexiconError(f"places.streets.{town}: must be a list of street names")
            index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
            for canonical in names:
                words = [w for w in canonical.split() if morph.fold(w) not in street_types]
                if not words:
                    raise LexiconError(f"places.streets.{town}: {canonical!r} names no street")
                earlier = tuple(morph.lemma(morph.fold(w)) for w in words[:-1])
                for form in _forms(words[-1]):
                    index.setdefault(form, []).append((earlier, canonical))
            for found in index.values():
                found.sort(key=lambda street: -len(street[0]))  # the longest name first
            self.towns[str(town)] = index

    def mentions(self, text: str, town: str | None) -> Iterator[tuple[int, int, str]]:
        """Known streets of ``town`` in ``text`` followed by a number: (start of the name,
        where the number starts, the street's official name)."""
        index = self.towns.get(town or "")
        if not index:
            return
        lowered = text.lower().replace("ё", "е")
        for match in _WORD.finditer(lowered):
            streets = index.get(match.group())
            if streets is None:
                continue
            gap = _BEFORE_NUMBER.match(lowered, match.end())
            if gap is None:
                continue
            before = lowered[: match.start()].split()
            for earlier, canonical in streets:
                if len(before) < len(earlier):
                    continue
                preceding = before[len(before) - len(earlier) :]
                if all(morph.lemma(w) == p for w, p in zip(preceding, earlier, strict=True)):
                    start = match.start()
                    for word in reversed(preceding):
                        start = lowered.rindex(word, 0, start)
                    yield start, gap.end(), canonical
                    break


def _forms(word: str) -> frozenset[str]:
    """The forms a street's name word is written in: an adjective in any form, else as is."""
    folded = morph.fold(word)
    if "ADJF" in morph.tags(folded):
        return morph.forms(morph.lemma(folded)) | {folded}
    return frozenset({folded})
