"""The statistical topic model: logistic regression on word stems, predicted with numpy only.

Trained by ``make train`` (bench/train_flagging.py, scikit-learn) on the real portal appeals;
shipped as ``flagging/model/topics.npz`` (vocabulary, weights) and ``topics.json`` (how it
was trained, held-out figures). Loaded once per process. The flagger asks it only when the
lexicon rules find no topic (see :class:`flagging.rules.Flagger`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from flagging import text

MODEL_DIR = Path(__file__).resolve().parent / "model"
STEM = 5  # letters of a word kept as its stem: a cheap, dictionary-free Russian stemmer


def stems(tokens: list[str]) -> list[str]:
    """Features of lower-cased words: stems, then bigrams of neighbouring stems."""
    out = [t[:STEM] for t in tokens if not t.isdigit()]
    return out + list(map(" ".join, pairwise(out)))


def features(raw_text: str) -> list[str]:
    """Features of a raw text (as the flagger sees it: no VK mentions, no links)."""
    return stems(text.words(text.clean(raw_text or "")))


@dataclass
class TopicModel:
    """Vocabulary, weights (features × codes) and intercepts of a fitted model."""

    vocabulary: list[str]
    codes: list[str]
    coef: np.ndarray
    intercept: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {f: i for i, f in enumerate(self.vocabulary)}
        self._words: dict[str, int | None] = {}  # word → its stem's row (a cache)
        self._pairs: dict[tuple[str, str], int | None] = {}  # neighbouring words → row

    def rows_of_words(self, tokens: list[str]) -> list[int]:
        """:meth:`rows` of ``stems(tokens)``, with the look-ups cached per word and word pair."""
        words, pairs, index = self._words, self._pairs, self._index
        if len(pairs) > 500_000:  # bound the caches (a long-running daemon)
            words.clear()
            pairs.clear()
        found: set[int | None] = set()
        kept = [t for t in tokens if not t.isdigit()]
        for token in kept:
            row = words.get(token, -1)
            if row == -1:
                row = words[token] = index.get(token[:STEM])
            found.add(row)
        for pair in pairwise(kept):
            row = pairs.get(pair, -1)
            if row == -1:
                row = pairs[pair] = index.get(f"{pair[0][:STEM]} {pair[1][:STEM]}")
            found.add(row)
        found.discard(None)
        return list(found)  # type: ignore[arg-type]

    def rows(self, feats: list[str]) -> list[int]:
        """The weight rows of the features the model knows (each once: features are binary)."""
        found = set(map(self._index.get, feats))
        found.discard(None)
        return list(found)  # type: ignore[arg-type]

    def probabilities_of_rows(self, texts: list[list[int]]) -> list[list[float]]:
        """Per text (given by :meth:`rows`), the probability of each code in ``codes`` order.

        One numpy pass for many texts: this is what keeps flagging fast.
        """
        if not texts:
            return []
        lengths = np.array([len(r) for r in texts])
        flat = np.fromiter((i for r in texts for i in r), dtype=np.int64, count=lengths.sum())
        logits = np.tile(self.intercept.astype(np.float64), (len(texts), 1))
        if flat.size:
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            taken = self.coef.take(flat, axis=0).astype(np.float64)
            filled = lengths > 0
            logits[filled] += np.add.reduceat(taken, starts[filled], axis=0)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return (exp / exp.sum(axis=1, keepdims=True)).tolist()

    def probabilities(self, feats: list[str]) -> dict[str, float]:
        """Code → probability (sums to 1 over the model's codes)."""
        probs = self.probabilities_of_rows([self.rows(feats)])[0]
        return dict(zip(self.codes, probs, strict=True))

    def best(self, feats: list[str]) -> str:
        probs = self.probabilities(feats)
        return max(probs, key=probs.__getitem__)

    def save(self, directory: Path, meta: dict[str, Any]) -> None:
        """Write ``topics.npz`` and ``topics.json`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            directory / "topics.npz",
            vocabulary=np.array(self.vocabulary),
            codes=np.array(self.codes),
            coef=self.coef.astype(np.float16),  # half the file; predictions differ < 0.1 %
            intercept=self.intercept.astype(np.float32),
        )
        (directory / "topics.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path = MODEL_DIR) -> TopicModel:
        """Read a saved model (no pickles: plain arrays)."""
        with np.load(directory / "topics.npz", allow_pickle=False) as data:
            model = cls(
                vocabulary=data["vocabulary"].tolist(),
                codes=data["codes"].tolist(),
                coef=data["coef"].astype(np.float32),
                intercept=data["intercept"].astype(np.float32),
            )
        meta_path = directory / "topics.json"
        if meta_path.exists():
            model.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return model


@lru_cache(maxsize=1)
def shipped() -> TopicModel | None:
    """The model shipped with the package, once per process; None if it is not there."""
    if not (MODEL_DIR / "topics.npz").exists():
        return None
    return TopicModel.load(MODEL_DIR)
