"""Realistic repost variants of real appeals, and corpora of any size built from them.

A repost of a complaint in another public or channel differs from the original by a prefix
(«Репост», «Подслушано …», «Жители пишут:»), emoji, a shortened tail, retyping typos, swapped
words or an added remark. :func:`variant` makes one such copy; :func:`corpus` builds a stream
of posts (originals, their variants, and new complaints in the same words about other
addresses) of any size, deterministic for a seed.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPEALS = ROOT.parent / "shared" / "data" / "appeals" / "spb_nash_gorod.jsonl.gz"

PREFIXES = (
    "Репост\n",
    "Подслушано Петербург\n",
    "Подслушано: ",
    "Анонимно\n",
    "Жители пишут: ",
    "Прислал подписчик\n",
    "Репост: ",
    "Сообщение от подписчика: ",
)
SUFFIXES = (
    "\nИсточник: vk.com/wall-12345_678",
    "\nПодписывайтесь на наш канал @spb_news",
    " Когда это закончится?!",
    " #жкх #спб",
    " https://t.me/spb_news/123",
    "\n\nПредложить новость: @spb_bot",
)
EMOJI = ("😡", "🔥", "❗️", "😢", "👉", "🤬", "⚡", "🙏")
_WORD = re.compile(r"\w+")
_LETTERS = "абвгдежзийклмнопрстуфхцчшщыьэюя"
_DIGITS = re.compile(r"\d+")


@dataclass(slots=True)
class Item:
    """One generated post: ``origin`` is the index of the original it copies (or itself)."""

    id: str
    text: str
    author: str
    at: datetime
    origin: int
    kind: str  # original | variant | new


def load_appeals() -> list[dict]:
    with gzip.open(APPEALS, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def typo(word: str, rng: random.Random) -> str:
    """One retyping slip in a word of letters: a dropped, doubled, swapped or wrong letter."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2:
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    return word[:i] + rng.choice(_LETTERS) + word[i + 1 :]


def variant(text: str, rng: random.Random) -> str:
    """A repost of ``text`` with one to three realistic changes."""
    changes = rng.sample(
        ("prefix", "emoji", "truncate", "typos", "swap", "suffix", "case"), rng.randint(1, 3)
    )
    words = text.split(" ")
    if "typos" in changes and words:
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(len(words))
            words[i] = typo(words[i], rng)
    if "swap" in changes and len(words) > 3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    if "truncate" in changes and len(words) > 8:
        words = [*words[: max(6, int(len(words) * rng.uniform(0.75, 0.95)))], "…"]
    out = " ".join(words)
    if "case" in changes:
        out = out.upper() if rng.random() < 0.3 else out.lower()
    if "emoji" in changes:
        out = f"{rng.choice(EMOJI)}{rng.choice(EMOJI)} {out} {rng.choice(EMOJI)}"
    if "prefix" in changes:
        out = rng.choice(PREFIXES) + out
    if "suffix" in changes:
        out += rng.choice(SUFFIXES)
    return out


def renumber(text: str, rng: random.Random) -> str:
    """The same complaint about another address: every number changed, or one added."""
    if _DIGITS.search(text):
        return _DIGITS.sub(lambda m: str(int(m.group()) + rng.randint(1, 400)), text)
    return f"{text} (дом {rng.randint(1, 400)}, кв. {rng.randint(1, 300)})"


def corpus(
    appeals: list[dict],
    size: int,
    *,
    seed: int = 7,
    variant_share: float = 0.2,
    days: int = 180,
) -> Iterator[Item]:
    """``size`` posts in time order: the real appeals first, then new complaints; a share of
    all posts are repost variants of an earlier one, by other authors."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1)
    step = timedelta(days=days) / max(size, 1)
    made: list[tuple[str, int]] = []  # (text, origin) of posts a variant may copy
    for n in range(size):
        at = start + step * n
        if made and rng.random() < variant_share:
            text, origin = made[rng.randrange(max(0, len(made) - 5000), len(made))]
            yield Item(
                f"v{n}", variant(text, rng), f"r{rng.randrange(10**9)}", at, origin, "variant"
            )
            continue
        base = appeals[n % len(appeals)]
        if n < len(appeals):
            text, kind = base["text"], "original"
        else:
            text, kind = renumber(base["text"], rng), "new"
        made.append((text, n))
        yield Item(f"p{n}", text, base["author"] if kind == "original" else f"a{n}", at, n, kind)
