"""Text normalisation for near-duplicate matching.

Reposts differ from their original by case, ё/е, punctuation, emoji, links, @mentions,
hashtags and repost boilerplate («Репост», «Подслушано …», «Анонимно», «Источник: …»,
«Подписывайтесь …»). :func:`normalise_for_match` removes all of that and leaves lower-case
words separated by single spaces; :func:`numbers` gives the numbers a text mentions (house
numbers and dates tell two similar complaints apart).
"""

from __future__ import annotations

import re
import unicodedata

# The patterns below run on lower-cased text: no re.I (case-insensitive matching is slower).
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w.-]+\.(?:ru|рф|com|org|net|su|me)(?:/\S*)?")
_MENTION = re.compile(r"(?<!\w)@[\w.]+|\[(?:id|club|public|event)\d+\|[^\]]*\]")
_HASHTAG = re.compile(r"(?<!\w)#[\w@]+")
# Whole lines that are repost furniture, not the resident's words.
_BOILERPLATE_LINE = re.compile(
    r"^\W*(?:"
    r"репост|repost|переслано|forwarded from\b.{0,60}|пересланное сообщение|"
    r"подслушано(?:\s+[\w-]+){0,3}|анонимно|аноним|"
    r"(?:источник|автор|фото|видео)\s*:.{0,80}|"
    r"(?:прислал[аи]?|от подписчи\w*|подписывайтесь|подпишись|предложить новость)\b.{0,60}"
    r")\W*$",
    re.M,
)
# Prefixes glued to the first line: «Репост: …», «Подслушано Заречный: …», «Анонимно: …».
_BOILERPLATE_PREFIX = re.compile(
    r"^\W*(?:репост|repost|переслано|подслушано(?:\s+\w+){0,3}|анонимно|от подписчика)"
    r"\s*[:—–-]+\s*",
)
_TLD = re.compile(r"\.(?:ru|рф|com|org|net|su|me)\b")
# Letters of Russian and the other languages of Russia's regions written in Cyrillic, Latin
# letters and digits: everything else (punctuation, emoji, symbols) separates words. An
# explicit class is several times faster than \w, and this runs on every post.
_WORD = re.compile(r"[0-9a-zа-яәөүңһҗіїєґўқғұӏ]+")
_NUMBER = re.compile(r"\d+")
_NONE: frozenset[str] = frozenset()


def normalise_for_match(text: str) -> str:
    """Lower-case words only: no links, mentions, hashtags, emoji, punctuation or boilerplate."""
    return " ".join(match_words(text))


def match_words(text: str) -> list[str]:
    """The words of :func:`normalise_for_match`, as a list."""
    if "№" in text:
        text = text.replace("№", " ")
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    if "ё" in text:
        text = text.replace("ё", "е")
    if "http" in text or "www." in text or _TLD.search(text):
        text = _URL.sub(" ", text)
    if "@" in text or "[" in text:
        text = _MENTION.sub(" ", text)
    if "\n" in text:
        text = _BOILERPLATE_LINE.sub(" ", text)
    elif _BOILERPLATE_LINE.match(text):  # one line: furniture or not as a whole
        return []
    text = _BOILERPLATE_PREFIX.sub("", text.lstrip())
    if "#" in text:
        text = _HASHTAG.sub(" ", text)
    return _WORD.findall(text)


def numbers(normal: str) -> frozenset[str]:
    """The numbers in a normalised text (without leading zeros)."""
    found = _NUMBER.findall(normal)
    if not found:
        return _NONE
    if any(n[0] == "0" for n in found):
        return frozenset(n.lstrip("0") or "0" for n in found)
    return frozenset(found)
