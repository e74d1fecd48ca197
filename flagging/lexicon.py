"""Lexicons: YAML files operators can extend, compiled into one fast word-form matcher.

A term is one or more words separated by spaces; each word is

- ``лемма``: the lemma, matching every inflected form (pymorphy3 builds them once);
- ``лемма:PRTS`` (or ``:PRTS,plur``): only the forms carrying those pymorphy3 grammemes;
- ``=слово``: that exact word only;
- ``осн*``: any word beginning with ``осн``;
- ``...``: up to three other words may stand here.

Group term lists hold strings (weight 1) or one-key mappings ``{term: weight}``. Override files
have the same top-level keys as the shipped files (``complaint``, ``official``, ``topics``,
``places``) and the same keys inside them (``topics: {codes: {roads: {terms: [...]}}}``);
mappings merge, lists extend, a mapping with ``replace: true`` replaces the shipped
one, and a group's ``remove:`` list drops shipped terms.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from flagging import lexicons, morph

# (by the data package's own file: a module compiled by mypyc has no ``__file__``)
SHIPPED = Path(lexicons.__file__).resolve().parent  # type: ignore[arg-type]
SECTIONS = ("complaint", "official", "topics", "places")
GAP = 3  # other words allowed where a term says "..."
ANCHORED_CACHE = 200_000  # distinct tokens whose anchored terms are remembered
NEGATIONS = frozenset({"не", "нет", "ни"})
Prefix = str | tuple[str, ...]  # of evidence keys: one, or any of several
# Words too common to index a phrase by: a phrase is looked up by its first other word.
FUNCTION_WORDS = frozenset(
    "не нет ни в во на по у до за с со к ко о об от из при для и а но же ли так как где кто что "  # noqa: SIM905
    "когда уже тоже вы ваш ваше ваша вас вам мы нас нам он она они это тот такой весь все "
    "можно можете сих".split()
)


class LexiconError(ValueError):
    """An override file is missing or malformed; the message names the file and the key."""


def load(overrides: Iterable[str | Path] = ()) -> dict[str, Any]:
    """The shipped lexicons merged with each override file in turn."""
    data: dict[str, Any] = {}
    for section in SECTIONS:
        data[section] = _read(SHIPPED / f"{section}.yaml")
    for path in overrides:
        extra = _read(Path(path))
        unknown = sorted(set(extra) - set(SECTIONS))
        if unknown:
            raise LexiconError(
                f"{path}: unknown section {unknown[0]!r} (expected one of {', '.join(SECTIONS)})"
            )
        for section, content in extra.items():
            if not isinstance(content, dict):
                raise LexiconError(f"{path}: {section}: expected a mapping")
            stray = sorted(set(content) - set(data[section]) - {"replace"})
            if stray:
                known = ", ".join(sorted(data[section]))
                raise LexiconError(
                    f"{path}: {section}: unknown key {stray[0]!r} (expected one of {known})"
                )
        data = merge(data, extra)
    return data


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LexiconError(f"{path}: cannot read lexicon ({exc.strerror or exc})") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise LexiconError(f"{path}{where}: not valid YAML") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise LexiconError(f"{path}: expected a mapping at the top level")
    return loaded


def merge(base: Any, extra: Any) -> Any:
    """``extra`` laid over ``base``: mappings merge, lists extend, ``replace: true`` replaces."""
    if isinstance(base, dict) and isinstance(extra, dict):
        if extra.get("replace"):
            return {k: copy.deepcopy(v) for k, v in extra.items() if k != "replace"}
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(extra, list):
        return base + [item for item in extra if item not in base]
    return copy.deepcopy(extra)


def terms_of(group: dict[str, Any], where: str) -> list[tuple[str, float]]:
    """The ``(term, weight)`` pairs of a group's ``terms`` list, less its ``remove`` list."""
    removed = {str(t) for t in group.get("remove") or []}
    out: list[tuple[str, float]] = []
    term: Any  # from YAML: checked below (compiled code checks declared types as it runs)
    weight: Any
    for item in group.get("terms") or []:
        if isinstance(item, str):
            term, weight = item, 1.0
        elif isinstance(item, dict) and len(item) == 1:
            term, weight = next(iter(item.items()))
            if not isinstance(weight, int | float):
                raise LexiconError(f"{where}: weight of {term!r} must be a number")
        else:
            raise LexiconError(f"{where}: a term is a string or {{term: weight}}, not {item!r}")
        if str(term) not in removed:
            out.append((str(term), float(weight)))
    return out


class Hit(NamedTuple):
    """One term found in a text: its target key, term, weight, and a negation before it."""

    key: str
    term: str
    weight: float
    negated: bool


@dataclass(slots=True)
class _Term:
    text: str
    words: list[frozenset[str] | str]  # a set of forms, or a prefix (str)
    gaps: list[int]  # gaps[i]: other words allowed before words[i]
    anchor: int  # the word the index looks up (the first that is not a function word)
    targets: list[tuple[str, float]] = field(default_factory=list)
    hits: tuple[tuple[Hit, ...], tuple[Hit, ...]] = ((), ())  # its hits, plain and negated

    def target(self, key: str, weight: float) -> None:
        self.targets.append((key, weight))
        self.hits = tuple(  # type: ignore[assignment]
            tuple(Hit(k, self.text, w, negated) for k, w in self.targets)
            for negated in (False, True)
        )


class Matcher:
    """Finds every term of every group in a token list, in one pass.

    Each term is indexed by one word (its anchor, the first that is no function word such as
    "не" or "в"), so a look-up per token finds the few terms worth checking around it.
    """

    def __init__(self) -> None:
        self._terms: dict[str, _Term] = {}
        self._index: dict[str, list[_Term]] = {}
        self._prefixes: dict[str, list[_Term]] = {}
        self._lengths: list[int] = []
        self._anchored: dict[str, tuple[_Term, ...]] = {}  # token → terms it may anchor
        self._words_of: dict[Prefix, tuple[frozenset[str], tuple[str, ...]]] = {}
        self._used: dict[tuple[str, Prefix], bool] = {}

    def add(self, term: str, key: str, weight: float) -> None:
        """Register ``term`` as evidence for ``key`` with ``weight``."""
        compiled = self._terms.get(term)
        if compiled is None:
            compiled = self._compile(term)
            self._terms[term] = compiled
            anchor = compiled.words[compiled.anchor]
            if isinstance(anchor, str):
                self._prefixes.setdefault(anchor, []).append(compiled)
                self._lengths = sorted({len(p) for p in self._prefixes})
            else:
                for form in anchor:
                    self._index.setdefault(form, []).append(compiled)
        compiled.target(key, weight)
        self._anchored.clear()
        self._words_of.clear()
        self._used.clear()

    def can_match(self, token: str, prefix: Prefix) -> bool:
        """Whether ``token`` can be a word of a term with a key starting with ``prefix`` (or
        one of them): when not, blanking it changes none of those terms' hits."""
        known = self._used.get((token, prefix))
        if known is None:
            if len(self._used) >= ANCHORED_CACHE:
                self._used.clear()
            forms, prefixes = self._words_for(prefix)
            known = token in forms or token in NEGATIONS or token.startswith(prefixes)
            self._used[token, prefix] = known
        return known

    def _words_for(self, prefix: Prefix) -> tuple[frozenset[str], tuple[str, ...]]:
        """Every form and every prefix in the terms with a key starting with ``prefix``."""
        found = self._words_of.get(prefix)
        if found is None:
            forms: set[str] = set()
            prefixes: set[str] = set()
            for term in self._terms.values():
                if any(key.startswith(prefix) for key, _ in term.targets):
                    for word in term.words:
                        if isinstance(word, str):
                            prefixes.add(word)
                        else:
                            forms |= word
            found = self._words_of[prefix] = (frozenset(forms), tuple(sorted(prefixes)))
        return found

    @staticmethod
    def _compile(term: str) -> _Term:
        words: list[frozenset[str] | str] = []
        gaps: list[int] = []
        gap = 0
        for raw in term.split():
            if raw == "...":
                gap = GAP
                continue
            words.append(_word(raw, term))
            gaps.append(gap)
            gap = 0
        if not words:
            raise LexiconError(f"empty term {term!r}")
        anchor = next(
            (i for i, w in enumerate(words) if isinstance(w, str) or not w & FUNCTION_WORDS), 0
        )
        return _Term(term, words, gaps, anchor)

    def find(self, tokens: list[str]) -> list[Hit]:
        """Every hit in ``tokens`` (folded words), in order of the anchor's position."""
        anchored = self._anchored
        missing = set(tokens).difference(anchored)
        if missing:
            if len(anchored) + len(missing) > ANCHORED_CACHE:
                anchored.clear()
                missing = set(tokens)
            for token in missing:
                anchored[token] = self._terms_anchored_on(token)
        found = list(map(anchored.__getitem__, tokens))
        hits: list[Hit] = []
        # Only the tokens that anchor some term are visited (most anchor none).
        for i, terms in compress(enumerate(found), found):
            for term in terms:
                if len(term.words) == 1:
                    start = i
                else:
                    start, end = _span(term, tokens, i)
                    if end < 0:
                        continue
                hits += term.hits[start > 0 and tokens[start - 1] in NEGATIONS]
        return hits

    def _terms_anchored_on(self, token: str) -> tuple[_Term, ...]:
        """The terms whose anchor is ``token`` or a prefix of it."""
        found = list(self._index.get(token, ()))
        for n in self._lengths:
            found += self._prefixes.get(token[:n], ())
        return tuple(found)


def _word(raw: str, term: str) -> frozenset[str] | str:
    if raw.startswith("="):
        return frozenset({morph.fold(raw[1:])})
    if raw.endswith("*"):
        if len(raw) < 4:
            raise LexiconError(f"prefix {raw!r} in {term!r} is too short (3 letters at least)")
        return morph.fold(raw[:-1])
    word, _, grams = raw.partition(":")
    wanted = frozenset(g.strip() for g in grams.split(",") if g.strip())
    found = morph.forms(word, wanted)
    if not found:
        raise LexiconError(f"{raw!r} in {term!r} has no forms with {','.join(sorted(wanted))}")
    return found


def _span(term: _Term, tokens: list[str], at: int) -> tuple[int, int]:
    """``(start, end)`` of ``term`` matched with its anchor at ``at``; end is -1 on no match."""
    words, gaps, count = term.words, term.gaps, len(tokens)
    pos = at + 1
    for j in range(term.anchor + 1, len(words)):
        word = words[j]
        for skip in range(gaps[j] + 1):
            if pos + skip >= count:
                return 0, -1
            token = tokens[pos + skip]
            if token.startswith(word) if isinstance(word, str) else token in word:
                pos = pos + skip + 1
                break
        else:
            return 0, -1
    end, pos = pos, at - 1
    for j in range(term.anchor - 1, -1, -1):
        word = words[j]
        for skip in range(gaps[j + 1] + 1):
            if pos - skip < 0:
                return 0, -1
            token = tokens[pos - skip]
            if token.startswith(word) if isinstance(word, str) else token in word:
                pos = pos - skip - 1
                break
        else:
            return 0, -1
    return pos + 1, end
