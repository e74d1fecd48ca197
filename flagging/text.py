"""Text preparation: drop markup that is no evidence (VK mentions, links), split into words."""

from __future__ import annotations

import re

from flagging import morph

# "[id123|Елена], " or "[club183888501|Жилищный комитет]": VK reply addresses.
_MENTION = re.compile(r"\[(?:id|club|public)\d+\|[^\]]*\]")
_URL = re.compile(r"https?://\S+|www\.\S+")
_WORD = re.compile(r"\w+(?:-\w+)*")
# A capitalised word and what comes before it: a sentence's end, an opening quote or nothing
# make it a sentence's first word; anything else, a name inside a sentence.
_CAPITALISED = re.compile(r"(?:^|(?P<before>[^\s])\s*)(?P<word>[А-ЯЁ][а-яё]{3,})\b")
_SENTENCE_START = frozenset('.!?…«"(:;-–—\n')


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


def proper_adjectives(text: str) -> set[str]:
    """Folded adjectives written with a capital inside a sentence: names ("на Школьной",
    "Больничная остановка" after a comma), not what the word means."""
    found: set[str] = set()
    if not text:
        return found
    for match in _CAPITALISED.finditer(text):
        before = match["before"]
        if before is None or before in _SENTENCE_START:
            continue
        word = match["word"].lower().replace("ё", "е")
        if "ADJF" in morph.tags(word):
            found.add(word)
    return found
