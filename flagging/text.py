"""Text preparation: drop markup that is no evidence (VK mentions, links), split into words."""

from __future__ import annotations

import re
from collections.abc import Callable

from flagging import morph

# "[id123|Елена], " or "[club183888501|Жилищный комитет]": VK reply addresses.
_MENTION = re.compile(r"\[(?:id|club|public)\d+\|[^\]]*\]")
_URL = re.compile(r"https?://\S+|www\.\S+")
_WORD = re.compile(r"\w+(?:-\w+)*")
_CAPITALISED = re.compile(r"[А-ЯЁ][а-яё]{3,}")
_SENTENCE_START = frozenset('.!?…«"(:;-–—')  # and the text's or a line's start


def clean(text: str) -> str:
    """``text`` without VK mentions and links (what a reader would take as the message)."""
    if "[" in text:
        text = _MENTION.sub(" ", text)
    if "http" in text or "www." in text:
        text = _URL.sub(" ", text)
    return text


def words(text: str) -> list[str]:
    """Lower-case words with ё read as е (the form lexicon look-ups use)."""
    return _WORD.findall(text.lower().replace("ё", "е"))


def proper_adjectives(text: str, wanted: Callable[[str], bool] = bool) -> set[str]:
    """Folded adjectives written with a capital inside a sentence: names ("на Школьной",
    "Больничная остановка" after a comma), not what the word means; only words ``wanted``
    (folded) are looked up."""
    found: set[str] = set()
    if not text:
        return found
    for match in _CAPITALISED.finditer(text):
        at = match.start()
        if at and text[at - 1].isalnum():
            continue  # inside a word ("ТЕСТсадовая"), not a name
        while at and text[at - 1] in " \t":
            at -= 1
        if not at or text[at - 1] == "\n" or text[at - 1] in _SENTENCE_START:
            continue
        word = match.group().lower().replace("ё", "е")
        if word not in found and wanted(word) and "ADJF" in morph.tags(word):
            found.add(word)
    return found
