"""The comment model: residents' comments judged by what hand-labelled comments taught.

Two logistic regressions over the mean word vector of a comment (navec's Russian news
embeddings, which the natasha package carries: nothing is downloaded; projected on their 32
principal axes, which keeps what the heads use and makes a word cost one small row) and what
the rules already found:

- complaint: over the rules' named signals (:meth:`flagging.rules.Flagger.signals`) and
  their logit. Asked only where the rule score lies inside the band and the text shows no
  answer style at all, so official replies and confident rule decisions never change;
- topic: over the rules' topic shares and the topic model's probabilities
  (:mod:`flagging.learned`), for comments that are complaints where the lexicons name none of
  the sectors, or one of the :data:`BROAD` sectors with less than :data:`SURE_SHARE` of their
  evidence. It knows every code of the labels, "other" included (a
  comment naming no sector). A narrow sector the lexicons name (trade, safety, sport...)
  stands: the model, fitted on few examples of each, would trade them for the broad ones.

Trained by ``make train`` (bench/train_comments.py) on the hand-labelled VK development set
only; shipped as ``flagging/model/comments.npz`` (weights, input names, the band) and
``comments.json`` (how it was trained, cross-validated figures). The flagger asks it only for
comments (replies to a post or comment): news, channel posts and portal appeals are another
population, judged as before.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

MODEL_DIR = Path(__file__).resolve().parent / "model"
DIM = 300  # navec vector size
# Sectors whose lexicons overlap most in residents' words (snow on a yard, a roof or a pavement;
# a road or a yard): the topic head chooses for comments the lexicons put here. Waste named by the
# lexicons stands: the head, fed the topic model that learnt the portal's filing of litter under
# landscaping, chose worse there (bench/train_comments.py).
BROAD = frozenset({"housing", "landscaping", "roads", "other"})
SURE_SHARE = 0.5  # a broad sector with this share of the lexicons' evidence stands


class Embeddings:
    """navec's quantised word vectors (loaded once: about 0.8 s and 50 MB)."""

    def __init__(self) -> None:
        from natasha.data import NEWS_EMBEDDING
        from navec import Navec

        navec = Navec.load(NEWS_EMBEDDING)
        pq = navec.pq
        self.ids = navec.vocab.word_ids
        self.counts = np.asarray(navec.vocab.counts)  # of each word in navec's corpus
        self.words = len(pq.indexes)
        self._indexes = pq.indexes  # words × parts: the centroid of each part
        self._centroids = pq.codes.reshape(pq.qdim * pq.centroids, -1)  # all parts' centroids
        self._offsets = np.arange(pq.qdim, dtype=np.int64) * pq.centroids

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The full vectors of words ``ids`` (rows of ``DIM`` float32)."""
        parts = self._indexes[ids] + self._offsets  # (words, parts) rows of _centroids
        return self._centroids.take(parts, axis=0).reshape(len(ids), DIM)


@lru_cache(maxsize=1)
def embeddings() -> Embeddings:
    return Embeddings()


def principal_axes(vectors: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` principal axes of ``vectors`` (DIM × count), each signed so that its
    largest component is positive (the same axes on any machine)."""
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:count].T
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(count)])
    return (axes * signs).astype(np.float32)


class WordVectors:
    """Word vectors projected on a model's few axes, each word projected once (on first use)
    into a table of navec's 250,000 words (memory is only taken for the words met)."""

    def __init__(self, projection: np.ndarray) -> None:
        self.navec = embeddings()
        self.projection = projection.astype(np.float32)
        self.table = np.zeros((self.navec.words, projection.shape[1]), dtype=np.float32)
        self.known = np.zeros(self.navec.words, dtype=bool)

    def mean_unit(self, texts: Sequence[list[str]]) -> np.ndarray:
        """Per text (lower-case words), the mean of its known words' projected vectors, scaled
        to length 1; zeros for a text with none. One numpy pass for all texts."""
        ids = self.navec.ids
        found = [[i for i in map(ids.get, words) if i is not None] for words in texts]
        lengths = np.array([len(f) for f in found], dtype=np.int64)
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float64)
        if not lengths.sum():
            return out
        flat = np.fromiter((i for f in found for i in f), dtype=np.int64, count=lengths.sum())
        new = np.unique(flat[~self.known[flat]])
        if len(new):  # row by row (no matrix product): a word's vector is the same in any batch
            full = self.navec.vectors(new)
            self.table[new] = np.einsum("wd,dk->wk", full, self.projection)  # (no BLAS)
            self.known[new] = True
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        filled = lengths > 0
        sums = np.add.reduceat(self.table.take(flat, axis=0), starts[filled], axis=0)
        sums = sums.astype(np.float64)
        out[filled] = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
        return out


@dataclass
class CommentModel:
    """Weights of both heads. Complaint features: [signals in ``signals`` order, rule logit,
    word vector]; topic features: [rule shares and topic-model probabilities of the codes in
    ``inputs``, word vector]. The word vector is the comment's mean navec vector projected on
    ``projection``'s axes (DIM × a few), scaled to length 1."""

    projection: np.ndarray
    signals: list[str]
    complaint_coef: np.ndarray
    complaint_intercept: float
    inputs: list[str]
    codes: list[str]
    topic_coef: np.ndarray  # features × codes
    topic_intercept: np.ndarray
    low: float = 0.2
    high: float = 0.8
    meta: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def word_vectors(self) -> WordVectors:
        """The projected word vectors (navec loaded at the first call)."""
        return WordVectors(self.projection)

    @property
    def dims(self) -> int:
        """Size of the projected word vector."""
        return int(self.projection.shape[1])

    def asks(self, score: float, official_score: float, official_author: bool, reply: bool) -> bool:
        """Whether the complaint head decides for a text: a comment by a resident, with no
        answer style at all and a rule score inside the band."""
        return (
            reply and not official_author and official_score == 0 and self.low <= score < self.high
        )

    @staticmethod
    def asks_topic(topics: list[str], shares: dict[str, float]) -> bool:
        """Whether the topic head chooses for a complaint with these lexicon topics."""
        best = topics[0]
        return best == "other" or (best in BROAD and shares.get(best, 0.0) < SURE_SHARE)

    def complaint_matrix(
        self, named: Sequence[dict[str, float]], scores: Sequence[float], vectors: np.ndarray
    ) -> np.ndarray:
        rows = np.array(
            [
                [n.get(s, 0.0) for s in self.signals] + [_logit(c)]
                for n, c in zip(named, scores, strict=True)
            ],
            dtype=np.float64,
        ).reshape(len(named), len(self.signals) + 1)
        return np.hstack([rows, vectors])

    def topic_matrix(
        self,
        shares: Sequence[dict[str, float]],
        probs: Sequence[dict[str, float]],
        vectors: np.ndarray,
    ) -> np.ndarray:
        rows = np.array(
            [
                [s.get(c, 0.0) for c in self.inputs] + [p.get(c, 0.0) for c in self.inputs]
                for s, p in zip(shares, probs, strict=True)
            ],
            dtype=np.float64,
        ).reshape(len(shares), 2 * len(self.inputs))
        return np.hstack([rows, vectors])

    def complaint_probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """P(complaint) per row; row by row (no matrix product), so a text gets the same score
        in any batch."""
        logits = (matrix * self.complaint_coef.astype(np.float64)).sum(axis=1)
        return 1.0 / (1.0 + np.exp(-(logits + self.complaint_intercept)))

    def topic_probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Rows × ``codes`` probabilities (row by row, as above)."""
        coef = self.topic_coef.astype(np.float64)
        logits = (matrix[:, :, None] * coef[None, :, :]).sum(axis=1) + self.topic_intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, directory: Path, meta: dict[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            directory / "comments.npz",
            projection=self.projection.astype(np.float32),
            signals=np.array(self.signals),
            complaint_coef=self.complaint_coef.astype(np.float32),
            complaint_intercept=np.array([self.complaint_intercept], dtype=np.float64),
            inputs=np.array(self.inputs),
            codes=np.array(self.codes),
            topic_coef=self.topic_coef.astype(np.float32),
            topic_intercept=self.topic_intercept.astype(np.float64),
            band=np.array([self.low, self.high], dtype=np.float64),
        )
        (directory / "comments.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path = MODEL_DIR) -> CommentModel:
        with np.load(directory / "comments.npz", allow_pickle=False) as data:
            low, high = data["band"].tolist()
            model = cls(
                projection=data["projection"].astype(np.float32),
                signals=data["signals"].tolist(),
                complaint_coef=data["complaint_coef"].astype(np.float32),
                complaint_intercept=float(data["complaint_intercept"][0]),
                inputs=data["inputs"].tolist(),
                codes=data["codes"].tolist(),
                topic_coef=data["topic_coef"].astype(np.float32),
                topic_intercept=data["topic_intercept"].astype(np.float64),
                low=low,
                high=high,
            )
        meta_path = directory / "comments.json"
        if meta_path.exists():
            model.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return model


def _logit(score: float) -> float:
    p = min(max(score, 1e-3), 1 - 1e-3)
    return math.log(p / (1 - p))


@lru_cache(maxsize=1)
def shipped() -> CommentModel | None:
    """The model shipped with the package, once per process; None if it is not there."""
    if not (MODEL_DIR / "comments.npz").exists():
        return None
    return CommentModel.load(MODEL_DIR)
