"""Text preparation: drop markup that is no evidence (VK mentions, links), split into words."""

from __future__ import annotations

import re

# "[id123|Елена], " or "[club183888501|Жилищный комитет]": VK reply addresses.
_MENTION = re.compile(r"\[(?:id|club|public)\d+\|[^\]]*\]")
_URL = re.compile(r"https?://\S+|www\.\S+")
_WORD = re.compile(r"\w+(?:-\w+)*")


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
