"""The comment model: what it was trained on, where it is asked, what it changes."""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import json
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from bench.train_comments import TOLERANCE, weight_difference
from crawler.model import Post
from flagging import Flagger, FlaggingSettings, comment_model, flagger, stage
from flagging.comment_model import CommentModel, WordVectors
from tests.conftest import REPO, shared

EVALUATION = REPO / "tests" / "data" / "vk_comment_labels.csv"
DEVELOPMENT = REPO / "tests" / "data" / "vk_comment_dev_labels.csv"


@pytest.fixture(scope="module")
def model() -> CommentModel:
    shipped = comment_model.shipped()
    assert shipped is not None, "flagging/model/comments.npz is missing: run make train"
    return shipped


@pytest.fixture(scope="module")
def comments() -> dict[str, dict[str, str]]:
    with shared("vk/vk_comments_spb_central.csv").open(encoding="utf-8", newline="") as fh:
        return {r["comment_id"]: r for r in csv.DictReader(fh)}


def labelled(path, comments: dict[str, dict[str, str]]) -> list[tuple[str, bool, bool]]:
    """(text, official author, complaint label) of a label file's comments."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        (
            comments[r["comment_id"]]["text"],
            comments[r["comment_id"]]["author_is_official"] == "True",
            r["is_complaint"] == "1",
        )
        for r in rows
    ]


def f1(truth: list[bool], guess: list[bool]) -> float:
    tp = sum(t and g for t, g in zip(truth, guess, strict=True))
    return 2 * tp / (sum(truth) + sum(guess))


def specificity(truth: list[bool], guess: list[bool]) -> float:
    negatives = [g for t, g in zip(truth, guess, strict=True) if not t]
    return sum(not g for g in negatives) / len(negatives)


def test_the_shipped_model_is_whole_and_small(model: CommentModel) -> None:
    assert model.complaint_coef.shape == (len(model.signals) + 1 + model.dims,)
    assert {"problem", "question_when", "verbs", "short"} <= set(model.signals)
    assert 0 < model.low < 0.5 < model.high < 1
    assert set(model.inputs) == set(flagger().labels)  # every topic code, "other" included
    assert {"housing", "landscaping", "roads", "waste", "other"} <= set(model.codes)
    assert model.topic_coef.shape == (2 * len(model.inputs) + model.dims, len(model.codes))
    assert model.topic_intercept.shape == (len(model.codes),)
    assert model.projection.shape == (300, model.dims) and model.dims < 100
    assert np.allclose(model.projection.T @ model.projection, np.eye(model.dims), atol=1e-4)
    assert np.isfinite(model.complaint_coef).all() and np.isfinite(model.topic_coef).all()
    assert (comment_model.MODEL_DIR / "comments.npz").stat().st_size < 100_000


def test_it_learnt_from_the_development_labels_only(model: CommentModel) -> None:
    data = model.meta["data"]
    assert data["labels"]["file"] == "tests/data/vk_comment_dev_labels.csv"
    assert data["labels"]["sha256"] == hashlib.sha256(DEVELOPMENT.read_bytes()).hexdigest()
    assert "vk_comment_labels.csv" not in json.dumps(model.meta)
    cross = model.meta["cross_validated"]
    # The complaint head buys specificity (news, questions, replies taken for complaints) at
    # next to no cost in F1 (grouped by thread: tests/data/README.md).
    head, rules = cross["complaint"]["with_model"], cross["complaint"]["rules"]
    assert head["specificity"] > rules["specificity"] + 0.05
    assert head["f1"] > rules["f1"] - 0.005
    topics = cross["topic_on_complaints"]
    assert topics["with_model"]["accuracy"] > topics["rules_and_topic_model_fallback"]["accuracy"]


def test_training_reproduces_the_shipped_file() -> None:
    """A refit matches within the tolerance: numpy and scikit-learn versions move float32
    weights by ~3e-8, not more."""
    shared("vk/vk_comments_spb_central.csv")  # what the refit reads
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "train_comments.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"max \|Δweight\| (\S+) \(tolerance", done.stdout)
    assert found and float(found[1]) <= TOLERANCE, done.stdout


def test_the_check_tells_a_different_model(model: CommentModel) -> None:
    """The tolerance is far below what a different fit moves (0.005 for C 1 % larger)."""
    assert weight_difference(model, replace(model)) == 0
    moved = replace(model, topic_coef=model.topic_coef.copy())
    moved.topic_coef[3, 1] += 10 * TOLERANCE
    assert weight_difference(model, moved) > TOLERANCE
    assert weight_difference(model, replace(model, signals=model.signals[:-1])) == float("inf")


def test_on_the_evaluation_comments_it_beats_the_rules(comments) -> None:
    rows = labelled(EVALUATION, comments)
    texts, officials, truth = zip(*rows, strict=True)
    replies = [True] * len(texts)
    shipped = flagger().flag_many(texts, officials, replies)
    plain = flagger(comments=False).flag_many(texts, officials, replies)
    judged = [f.is_complaint for f in shipped]
    alone = [f.is_complaint for f in plain]
    assert f1(list(truth), judged) > f1(list(truth), alone)
    assert specificity(list(truth), judged) > specificity(list(truth), alone) + 0.05
    assert not any(f.is_complaint for f, o in zip(shipped, officials, strict=True) if o)


def test_on_the_evaluation_complaints_it_names_more_topics_right(comments) -> None:
    with EVALUATION.open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["is_complaint"] == "1"]
    texts = [comments[r["comment_id"]]["text"] for r in rows]
    replies = [True] * len(texts)
    shipped = flagger().flag_many(texts, None, replies)
    plain = flagger(comments=False).flag_many(texts, None, replies)
    asked = [n for n, f in enumerate(shipped) if f.topic_source == "comments"]
    assert len(asked) > len(rows) / 4
    right = sum(shipped[n].topics[0] == rows[n]["topic"] for n in asked)
    before = sum(plain[n].topics[0] == rows[n]["topic"] for n in asked)
    assert right > before
    for n, (one, rule) in enumerate(zip(shipped, plain, strict=True)):
        sure = rule.topic_source == "rules" and not CommentModel.asks_topic(
            rule.topics, rule.topic_scores
        )
        if rule.is_complaint and sure:  # a narrow sector, or a broad one the lexicons are sure of
            assert one.topics == rule.topics and one.topic_source != "comments", texts[n]


def test_it_changes_only_unsure_resident_comments(model: CommentModel, comments) -> None:
    texts = [c["text"] for c in comments.values()]
    officials = [c["author_is_official"] == "True" for c in comments.values()]
    replies = [True] * len(texts)
    shipped = flagger().flag_many(texts, officials, replies)
    plain = flagger(comments=False).flag_many(texts, officials, replies)
    changed = 0
    for one, rule, official in zip(shipped, plain, officials, strict=True):
        if model.asks(rule.complaint_score, rule.official_score, official, True):
            changed += one.complaint_score != rule.complaint_score
            assert one.is_complaint == (one.complaint_score >= 0.5)
        else:
            assert one.complaint_score == rule.complaint_score
    assert changed > 100  # of the 1,260 real comments
    # Posts (news, channel posts, appeals) are another population: the rules alone judge them.
    as_posts = flagger().flag_many(texts, officials)
    assert [f.complaint_score for f in as_posts] == [f.complaint_score for f in plain]


def test_official_answers_stay_answers_when_posted_as_comments() -> None:
    """Every 10th real portal answer, as a reply by an account nobody marked official."""
    with gzip.open(shared("appeals/spb_nash_gorod.jsonl.gz"), "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in itertools.islice(fh, 0, None, 10)]
    answers = [r["answer_text"] for r in rows if (r.get("answer_text") or "").strip()]
    flags = flagger().flag_many(answers, None, [True] * len(answers))
    assert not any(f.is_complaint for f in flags if f.official_style)
    assert sum(f.is_complaint for f in flags) / len(answers) <= 0.01


def test_a_comment_scores_the_same_in_any_batch(comments) -> None:
    texts = [c["text"] for c in itertools.islice(comments.values(), 300)]
    rules = flagger()
    together = rules.flag_many(texts, None, [True] * len(texts))
    alone = [rules.flag(t, reply=True) for t in texts]
    assert [f.complaint_score for f in together] == [f.complaint_score for f in alone]


def test_the_stage_asks_it_for_comments_and_the_setting_turns_it_off(
    model: CommentModel, comments
) -> None:
    plain = Flagger()
    unsure = next(
        c["text"]
        for c in comments.values()
        if model.asks(plain.flag(c["text"]).complaint_score, 0, False, True)
        and flagger().flag(c["text"], reply=True).complaint_score
        != plain.flag(c["text"]).complaint_score
    )

    def score(kind: str, settings: FlaggingSettings) -> float | None:
        post = Post(platform="vk", native_id="1_2", kind=kind, parent="1" if kind else None)
        post.text = unsure
        return stage(settings)([post])[0].complaint_score

    rules_score = plain.flag(unsure).complaint_score
    assert score("comment", FlaggingSettings()) != rules_score
    assert score("post", FlaggingSettings()) == rules_score
    assert score("comment", FlaggingSettings(comment_model=False)) == rules_score


def test_a_word_vector_does_not_depend_on_what_came_before(model: CommentModel) -> None:
    """Words are projected once, on first use: the result must not depend on the batch."""
    text = ["во", "дворе", "сосульки", "и", "не", "убран", "снег"]
    other = ["мусор", "у", "метро", "чернышевская", "сосульки", "неизвестноеслово"]
    alone = WordVectors(model.projection).mean_unit([text])
    after = WordVectors(model.projection)
    after.mean_unit([other, ["снег"]])
    assert np.array_equal(after.mean_unit([other, text])[1], alone[0])
    assert np.isclose(np.linalg.norm(alone[0]), 1.0)
    assert not WordVectors(model.projection).mean_unit([["zzzqqq"]]).any()  # no known word
