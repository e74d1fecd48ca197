"""Places in Russian text: addresses, streets, districts and settlements, by regular rules.

natasha's NER (~120 texts/s) and its yargy address extractor (~7 texts/s) are far too slow for
the stage's 5,000 posts/s, so places are found by patterns built from ``places.yaml``, with
pymorphy3 judging bare names ("Литейный 64") and putting districts into the nominative.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from flagging import morph
from flagging.gazetteer import Gazetteer

_NAME = r"[А-ЯЁ][а-яё]+(?:-[А-ЯЁа-яё][а-яё]+)?"
_ORDINAL = r"(?:\d{1,2}-?(?:я|й|ая|ый|ой|ий)\s+)"
# A house's letter ("12б", "5 а,"); not "в" or "а" before a word ("12 в поликлинике").
_LETTER = r"(?:(?:[а-еА-Е]|\s[бгдеБГДЕ]|\s[аАвВ](?!\s+[а-яёА-ЯЁ]))(?![а-яё]))"
_HOUSE = (
    rf"(?:,?\s*(?:д\.|дом|д)?\s*(?P<num>\d{{1,4}}{_LETTER}?"
    r"(?:,?\s*(?:к\.?|корп\.?|корпус|/)\s*\d{1,3})?)(?!\s*(?:-?\s*(?:й|я|е|х|ти|го)\b|%|\d)))?"
)
# A number followed by one of these is an amount, not a house ("5 лет", "10 минут").
_UNITS = re.compile(
    r"\s*(?:год|лет|мес|нед|дн|ден|час|мин|сек|раз|чел|руб|тыс|млн|кв|м\b|км|см|%|этаж|шт|"
    r"квартир|подъезд|дом|мая|января|февраля|марта|апреля|июня|июля|августа|сентября|"
    r"октября|ноября|декабря)",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[а-яёa-z0-9]+(?:-[а-яё]+)*")
_DIGIT = re.compile(r"\d")
_NUMBER = re.compile(r"\d+")
_LETTER_BEFORE = re.compile(r"[А-ЯЁа-яё]\.?[\s,]*(?:д\.|дом)?\s*$")
_NOMINATIVE = frozenset({"nomn", "sing", "masc"})


# "у дома 12 по ...", "дом № 5 по ...": a house named before its street.
_HOUSE_BY = re.compile(
    rf"(?<![а-яё])(?i:дом(?:а|у|ом|е)?)\s*(?:№\s*)?"
    rf"(?P<num>\d{{1,4}}{_LETTER}?(?:\s*(?:к|корп|корпус)\.?\s*\d{{1,3}})?)\s+по\s+"
)
_BARE_NAME = re.compile(_NAME)
# The endings of an adjective in another case than the nominative ("Садовой", "Литейном").
_OBLIQUE = re.compile(r"(?:ой|ей|ую|юю|ого|его|ому|ему|ым|им|ом|ем)$")
_FUNCTION_WORDS = frozenset({"PREP", "CONJ", "PRCL", "NPRO", "Apro"})
_NAME_LIKE = frozenset({"ADJF", "Surn", "Geox", "Name", "Patr", "UNKN"})


class Located(NamedTuple):
    """A place found in a text: where it stands (``text[start:end]``), its kind and name."""

    start: int
    end: int
    kind: str
    name: str
    typed: bool = False  # named with a street type ("улица", "пр."): surely a street's name


Candidate = tuple[int, int, str, str, bool]  # start, end, kind, name, named with a type


def _alternation(words: list[str]) -> str:
    # Longest first, ties by spelling: the pattern (and so every match) is the same each run.
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


class PlaceFinder:
    """Finds places in a text according to the ``places`` lexicon."""

    def __init__(self, lexicon: dict[str, Any]) -> None:
        self.full: dict[str, str] = {}
        for full, spellings in (lexicon.get("street_types") or {}).items():
            for spelling in [full, *(spellings or [])]:
                self.full[spelling.lower()] = full
        shorter = _alternation([w for w in self.full if len(w) <= 1])
        # Full street-type words in every case ("на Садовой улице") map to the nominative.
        self.gender: dict[str, str] = {}
        for full in dict.fromkeys(self.full.values()):  # file order: deterministic
            self.gender[full] = morph.gender(full)
            for form in morph.forms(full):
                self.full.setdefault(form, full)
        self._type_full = frozenset(w for w in self.full if len(w) > 4 and "-" not in w)
        # The type first, as written or in any case of its full word ("на улице Ленина").
        longer = _alternation([w for w in self.full if len(w) > 1])
        abbrevs = f"(?:{longer})(?:\\.\\s*|\\s+)|(?:{shorter})\\.\\s*"
        self._type_first = re.compile(
            rf"(?<![а-яёА-ЯЁ-])(?P<type>(?i:{abbrevs}))"
            rf"(?P<name>{_ORDINAL}?{_NAME}(?:\s+{_NAME})?){_HOUSE}",
        )
        # "Мебельная улица, 47": the name ends right before the type word, the house follows.
        self._name_before = re.compile(
            rf"(?<![а-яёА-ЯЁ-])(?P<name>{_ORDINAL}?{_NAME}(?:\s+{_NAME})?|\d{{1,2}}-?(?:я|й))\s+$"
        )
        self._house = re.compile(rf"(?![а-яё]){_HOUSE}")
        # A bare address is found from its number: the name must end right before it.
        self._bare_name = re.compile(
            rf"(?<![^\s,(«\"])(?P<name>{_NAME})\s*,?\s*(?:д\.\s*|дом\s+)?$"
        )
        self._bare_number = re.compile(
            rf"\d{{1,3}}(?!\d){_LETTER}?(?:/\d{1, 3})?(?:\s*(?:к|корп)\.?\s*\d)?(?![\d.,:]\d)"
        )
        markers: dict[str, str] = {}
        for full, spellings in (lexicon.get("settlement_markers") or {}).items():
            for spelling in [full, *(spellings or [])]:
                markers[spelling.lower()] = full
        short = _alternation([m for m in markers if len(m) <= 3])
        long = _alternation([m for m in markers if len(m) > 3])
        self._settlement = re.compile(
            rf"(?<![а-яёА-ЯЁ-])(?i:(?:{short})\.\s*|(?:{long})\.?\s+)"
            rf"(?P<name>{_NAME}(?:[\s-]{_NAME})?)",
        )
        district = _alternation(lexicon.get("district_words") or ["район"])
        self._district = re.compile(
            rf"(?<![а-яёА-ЯЁ-])(?P<name>[А-ЯЁ][а-яё]+(?:ый|ий|ой|ого|ому|ым|ом|ая|ое|ое))\s+"
            rf"(?:{district})[а-яё]*"
        )
        self.not_names = {w.lower() for w in lexicon.get("not_names") or []}
        # Words one of which a text must hold for each pattern to be worth running.
        self._type_words = self.type_words = _with_forms(self.full)
        self.gazetteer = Gazetteer(lexicon.get("streets"), self.type_words)
        self._marker_words = _with_forms(markers)
        self._district_words = _with_forms(lexicon.get("district_words") or ["район"])
        self._triggers = self._type_words | self._marker_words | self._district_words
        # Abbreviations that only count with a full stop ("г. Колпино", not the word "г").
        self._dotted = frozenset(
            w for w in self._triggers if len(w) <= 1 and w not in self._district_words
        )

    def find(self, text: str, words: Iterable[str] = ()) -> list[dict[str, str]]:
        """Places in ``text``, in order of appearance, each ``{"kind": ..., "name": ...}``.

        ``words`` are the text's folded words when the caller has them (a quicker check).
        """
        return as_dicts(self.locate(text, words))

    def locate(
        self, text: str, words: Iterable[str] = (), town: str | None = None
    ) -> list[Located]:
        """Places in ``text`` with where each stands, in order of appearance; ``town`` is the
        municipality whose known streets (the gazetteer) count too."""
        vocabulary = set(words) or set(_WORDS.findall(text.lower().replace("ё", "е")))
        streets = not vocabulary.isdisjoint(self._type_words)
        districts = not vocabulary.isdisjoint(self._district_words)
        settlements = not vocabulary.isdisjoint(self._marker_words)
        numbers = _DIGIT.search(text) is not None
        if not (streets or districts or settlements or numbers):
            return []
        # Each pattern is tried only around the words that can start or end it.
        lowered = text.lower().replace("ё", "е")
        anchors = [
            (start, start + len(token), token)
            for token in vocabulary & self._triggers
            for start in _occurrences(lowered, token, token in self._dotted)
        ]
        if numbers:
            anchors += [(m.start(), m.end(), m.group()) for m in _NUMBER.finditer(text)]
        candidates: list[Candidate] = []
        for start, end, token in anchors:
            if streets and token in self._type_words:
                candidates += self._streets_at(text, start, end, token)
            if districts and token in self._district_words:
                m = self._district.search(text, max(0, start - 40), end + 10)
                if m:
                    nominative = morph.inflect(m["name"].lower(), _NOMINATIVE).capitalize()
                    candidates.append((*m.span(), "district", f"{nominative} район", False))
            if settlements and token in self._marker_words:
                m = self._settlement.match(text, start)
                if m and m["name"].lower() not in self.not_names:
                    name = _settlement_name(_tidy(m["name"]))
                    candidates.append((*m.span(), "settlement", name, False))
            if numbers and token[0].isdigit():
                candidates += self._bare_address_at(text, start)
        if numbers and " по " in lowered:
            candidates += self._house_on_street(text, candidates)
        for start, at, street in self.gazetteer.mentions(text, town) if numbers else ():
            number = self._bare_number.match(text, at)
            if number and not _UNITS.match(text, number.end()):
                name = f"{street}, {_tidy(number.group())}"
                candidates.append((start, number.end(), "address", name, True))
        return _longest_readings(candidates)

    def _streets_at(self, text: str, start: int, end: int, token: str) -> list[Candidate]:
        """Streets around a street-type word: the type first ("ул. Ленина, 5", "на улице
        Садовой") and the name first ("Мебельная улица, 47")."""
        found: list[Candidate] = []
        m = self._type_first.match(text, start)
        if m and m["name"].lower() not in self.not_names:
            written = m["type"].lower().rstrip(". \t\r\n")
            full, name = self.full[written], _tidy(m["name"])
            if _OBLIQUE.search(name):  # "на улице Садовой", "ул. Садовой": agree it
                name = self._nominative(name, full)
            found.append((*m.span(), *_with_house(f"{full} {name}", m["num"]), True))
        m = self._name_before.search(text, max(0, start - 50), start)
        house = self._house.match(text, end) if m and token in self._type_full else None
        if m and house and not _function_word(m["name"]):
            full = self.full[token]
            first, name = _without_preposition(m.start(), _tidy(m["name"]))
            name = self._nominative(name, full)
            found.append((first, house.end(), *_with_house(f"{name} {full}", house["num"]), True))
        return found

    def _house_on_street(self, text: str, found: list[Candidate]) -> list[Candidate]:
        """ "у дома 12 по улице Гагарина", "дом 5 по Садовой": the house before its street (a
        street found already, or a bare name, put into the nominative)."""
        streets = {start: (end, name) for start, end, kind, name, _ in found if kind == "street"}
        out: list[Candidate] = []
        for m in _HOUSE_BY.finditer(text):
            number = _tidy(m["num"])
            if m.end() in streets:
                end, street = streets[m.end()]
                out.append((m.start(), end, "address", f"{street}, {number}", True))
                continue
            named = _BARE_NAME.match(text, m.end())
            if named and self._is_street_name(named.group()):
                name = named.group()
                if "ADJF" in morph.tags(name.lower()):
                    name = morph.inflect(name.lower(), frozenset({"nomn"}), "ADJF").capitalize()
                out.append((m.start(), named.end(), "address", f"{name}, {number}", True))
        return out

    def _bare_address_at(self, text: str, start: int) -> list[Candidate]:
        """A street-like name right before the number at ``start``: "Литейный 64"."""
        if not _LETTER_BEFORE.search(text, max(0, start - 6), start):
            return []
        named = self._bare_name.search(text, max(0, start - 40), start)
        number = self._bare_number.match(text, start) if named else None
        if not named or not number or not self._is_street_name(named["name"]):
            return []
        if _UNITS.match(text, number.end()):
            return []
        name = f"{named['name']}, {_tidy(number.group())}"
        return [(named.start(), number.end(), "address", name, False)]

    def _nominative(self, name: str, street_type: str) -> str:
        """Adjectives of a street's name agreeing with its type: "Садовой" → "Садовая"."""
        gender = self.gender.get(street_type)
        if not gender:
            return name
        words = name.split()
        if any(w[0].isalpha() and "ADJF" not in morph.tags(w.lower()) for w in words):
            return name  # in the genitive: "Ленина", "Александра Невского", "Красного Текстильщика"
        for i, word in enumerate(words):
            if word[0].isalpha() and "ADJF" in morph.tags(word.lower()):
                grams = frozenset({"nomn", "sing", gender})
                words[i] = morph.inflect(word.lower(), grams, "ADJF").capitalize()
        return " ".join(words)

    def _is_street_name(self, word: str) -> bool:
        if word.lower() in self.not_names or len(word) < 4:
            return False
        grams = morph.tags(word.lower())
        if grams & {"Surn", "Geox", "Name", "Patr", "UNKN", "ADJF"}:
            return not grams & {"NUMR", "PREP", "CONJ", "NPRO", "Apro"}
        return False


def _occurrences(text: str, word: str, dotted: bool = False) -> list[int]:
    """Start offsets of ``word`` in ``text`` as a whole word (followed by "." if ``dotted``)."""
    out = []
    target = word + "." if dotted else word
    at = text.find(target)
    while at >= 0:
        end = at + len(word)
        before = text[at - 1] if at else " "
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() or before == "-") and (
            dotted or not (after.isalnum() or after == "-")
        ):
            out.append(at)
        at = text.find(target, end)
    return out


def _with_forms(words: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for word in words:
        out |= morph.forms(word.lower()) if "-" not in word else {morph.fold(word)}
    return frozenset(out)


def _tidy(text: str) -> str:
    return " ".join(text.split())


def _without_preposition(start: int, name: str) -> tuple[int, str]:
    """A name of two words read before a street type, less a first word that is no part of
    a name ("На Школьной улице", "Благоустройство Роменской улицы"): where the name then
    starts, and the name."""
    first, space, rest = name.partition(" ")
    if not space or first[0].isdigit():
        return start, name
    grams = morph.tags(first.lower())
    if grams & _NAME_LIKE and not grams & _FUNCTION_WORDS:
        return start, name
    return start + len(first) + 1, rest


def _function_word(name: str) -> bool:
    """Whether a one-word name is a preposition or the like ("На улице Ленина")."""
    return " " not in name.strip() and bool(morph.tags(name.strip().lower()) & _FUNCTION_WORDS)


def _longest_readings(candidates: list[Candidate]) -> list[Located]:
    """Overlapping readings: the longest wins (an address with its house number beats the
    bare street), ties by position and name, so the result never depends on set order."""
    found: list[Located] = []
    taken: list[tuple[int, int]] = []
    for start, end, kind, name, typed in sorted(candidates, key=lambda c: (c[0] - c[1], c[0], c)):
        if not any(s < end and start < e for s, e in taken):
            taken.append((start, end))
            found.append(Located(start, end, kind, name, typed))
    found.sort()
    return found


def as_dicts(located: Iterable[Located]) -> list[dict[str, str]]:
    """Each place once (its first mention), as ``{"kind": ..., "name": ...}``."""
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for place in located:
        if (place.kind, place.name) not in seen:
            seen.add((place.kind, place.name))
            out.append({"kind": place.kind, "name": place.name})
    return out


def _with_house(street: str, number: str | None) -> tuple[str, str]:
    if number:
        return "address", f"{street}, {_tidy(number)}"
    return "street", street


def _settlement_name(name: str) -> str:
    first, _, rest = name.partition(" ")
    grams = morph.tags(first.lower())
    if "Geox" in grams and "nomn" not in grams:
        first = morph.inflect(first.lower(), frozenset({"nomn", "sing"})).capitalize()
    return f"{first} {rest}".strip()
