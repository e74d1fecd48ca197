"""The statistical topic model: logistic regression on word stems, predicted with numpy only.

Trained by ``make train`` (bench/train_flagging.py, scikit-learn) on the real portal appeals;
shipped as ``flagging/model/topics.npz`` (vocabulary, weights) and ``topics.json`` (how it
was trained, held-out figures). Loaded once per process. The flagger asks it only when the
lexicon rules find no topic (see :class:`flagging.rules.Flagger`), and for posts that read like
such appeals: the style model (``style.npz``, the same kind of model with the codes ``social``
and ``portal``, trained on the appeals against residents' VK comments) tells which those are.
"""

from __future__ import annotations

import json
from functools import lru_cache
from itertools import chain, pairwise
from pathlib import Path
from typing import Any

import numpy as np

from flagging import model as model_files
from flagging import text

# The package's files (not __file__: this module is compiled by mypyc, see pyproject.toml).
MODEL_DIR = Path(model_files.__file__).resolve().parent  # type: ignore[arg-type]
STEM = 5  # letters of a word kept as its stem: a cheap, dictionary-free Russian stemmer


def stems(tokens: list[str]) -> list[str]:
    """Features of lower-cased words: stems, then bigrams of neighbouring stems."""
    out = [t[:STEM] for t in tokens if not t.isdigit()]
    return out + list(map(" ".join, pairwise(out)))


def features(raw_text: str) -> list[str]:
    """Features of a raw text (as the flagger sees it: no VK mentions, no links)."""
    return stems(text.words(text.clean(raw_text or "")))


class TopicModel:
    """Vocabulary, weights (features × codes) and intercepts of a fitted model."""

    _index: dict[str, int]  # feature → row
    # Stem pairs by number: the stems found in the vocabulary's pairs get ids, and a pair's
    # row is looked up by ``first * base + second`` (no strings built per text).
    _stem_ids: dict[str, int]
    _base: int
    _pair_rows: dict[int, int]
    _words: dict[str, tuple[int, int]]  # word → its stem's row and id (a cache)

    def __init__(
        self,
        vocabulary: list[str],
        codes: list[str],
        coef: np.ndarray,
        intercept: np.ndarray,
        meta: dict[str, Any] | None = None,
        tables: TopicModel | None = None,
    ) -> None:
        """``tables``: a model of the same vocabulary whose look-up tables (and word cache)
        this one shares instead of building its own."""
        self.vocabulary = vocabulary
        self.codes = codes
        self.coef = coef
        self.intercept = intercept
        self.meta: dict[str, Any] = meta or {}
        if tables is not None and tables.vocabulary == vocabulary:
            self._index, self._stem_ids = tables._index, tables._stem_ids
            self._base, self._pair_rows = tables._base, tables._pair_rows
            self._words = tables._words
            return
        self._index = {f: i for i, f in enumerate(vocabulary)}
        self._stem_ids = {}
        pairs: list[tuple[str, str, int]] = []
        for row, feature in enumerate(vocabulary):
            first, space, second = feature.partition(" ")
            if space:
                pairs.append((first, second, row))
                for stem in (first, second):
                    self._stem_ids.setdefault(stem, len(self._stem_ids))
        self._base = len(self._stem_ids) + 1
        self._pair_rows = {
            self._stem_ids[a] * self._base + self._stem_ids[b]: row for a, b, row in pairs
        }
        self._words = {}

    def rows_of_words(self, tokens: list[str]) -> list[int]:
        """:meth:`rows` of ``stems(tokens)``, with each word's stem row and id cached."""
        words, base, pair_rows = self._words, self._base, self._pair_rows
        if len(words) > 500_000:  # bound the cache (a long-running daemon)
            words.clear()
        found: set[int] = set()
        previous = -1  # the id of the previous word's stem (-1: in no pair)
        for token in tokens:
            if token.isdigit():
                continue
            known = words.get(token)
            if known is None:
                stem = token[:STEM]
                known = words[token] = (self._index.get(stem, -1), self._stem_ids.get(stem, -1))
            row, stem_id = known
            if row >= 0:
                found.add(row)
            if previous >= 0 and stem_id >= 0:
                row = pair_rows.get(previous * base + stem_id, -1)
                if row >= 0:
                    found.add(row)
            previous = stem_id
        return list(found)

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
        flat = np.fromiter(chain.from_iterable(texts), dtype=np.int64, count=lengths.sum())
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

    def save(self, directory: Path, meta: dict[str, Any], name: str = "topics") -> None:
        """Write ``NAME.npz`` and ``NAME.json`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            directory / f"{name}.npz",
            vocabulary=np.array(self.vocabulary),
            codes=np.array(self.codes),
            coef=self.coef.astype(np.float16),  # half the file; predictions differ < 0.1 %
            intercept=self.intercept.astype(np.float32),
        )
        (directory / f"{name}.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(
        cls, directory: Path = MODEL_DIR, name: str = "topics", tables: TopicModel | None = None
    ) -> TopicModel:
        """Read a saved model (no pickles: plain arrays); ``tables`` as for the constructor."""
        with np.load(directory / f"{name}.npz", allow_pickle=False) as data:
            model = cls(
                vocabulary=data["vocabulary"].tolist(),
                codes=data["codes"].tolist(),
                coef=data["coef"].astype(np.float32),
                intercept=data["intercept"].astype(np.float32),
                tables=tables,
            )
        meta_path = directory / f"{name}.json"
        if meta_path.exists():
            model.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return model


@lru_cache(maxsize=1)
def shipped() -> TopicModel | None:
    """The model shipped with the package, once per process; None if it is not there."""
    if not (MODEL_DIR / "topics.npz").exists():
        return None
    return TopicModel.load(MODEL_DIR)


@lru_cache(maxsize=1)
def shipped_style() -> TopicModel | None:
    """The shipped style model (codes ``social``, ``portal``), once per process, sharing the
    topic model's look-up tables (it is fitted on its vocabulary); None if it is not there."""
    if not (MODEL_DIR / "style.npz").exists():
        return None
    return TopicModel.load(MODEL_DIR, "style", tables=shipped())
