"""The shipped topic model: loads, predicts real appeals, is asked only when the rules are mute."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from bench.train_flagging import TOLERANCE, code_of, weight_gap
from flagging import Flagger, FlaggingSettings, LexiconError, flagger, learned, stage
from flagging.learned import TopicModel
from tests.conftest import shared

CODES = {
    "housing", "roads", "transport", "landscaping", "waste", "ecology", "energy", "healthcare",
    "education", "social", "safety", "construction", "culture", "sport", "communications",
    "trade", "labour", "animals", "public_services", "other",
}  # fmt: skip
APPEALS = "appeals/spb_nash_gorod.jsonl.gz"


@pytest.fixture(scope="module")
def model() -> TopicModel:
    shipped = learned.shipped()
    assert shipped is not None, "flagging/model/topics.npz is missing: run make train"
    return shipped


@pytest.fixture(scope="module")
def appeals() -> list[dict[str, str]]:
    """Every 20th real appeal (about 3,000), read in place."""
    with gzip.open(shared(APPEALS), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for n, line in enumerate(fh) if n % 20 == 0]


def test_the_shipped_model_is_whole_and_small(model: TopicModel) -> None:
    assert set(model.codes) <= CODES and "other" not in model.codes
    assert {"housing", "landscaping", "roads", "waste", "trade"} <= set(model.codes)
    assert model.coef.shape == (len(model.vocabulary), len(model.codes))
    assert model.intercept.shape == (len(model.codes),)
    assert np.isfinite(model.coef).all()
    size = sum(p.stat().st_size for p in learned.MODEL_DIR.glob("topics.*"))
    assert size < 2_000_000


def test_it_was_trained_on_the_shared_appeals(model: TopicModel) -> None:
    digest = hashlib.sha256(shared(APPEALS).read_bytes()).hexdigest()
    assert model.meta["data"]["sha256"] == digest
    assert model.meta["appeals"] == 59889
    held = model.meta["held_out_districts"]
    assert held["all"]["accuracy"] > 0.85  # districts it did not see while validating


def test_it_predicts_real_appeals(model: TopicModel, appeals: list[dict[str, str]]) -> None:
    right = sum(
        model.best(learned.features(a["text"])) == code_of(a["category"], a["reason"])
        for a in appeals
    )
    assert right / len(appeals) > 0.9


@pytest.mark.parametrize(
    ("category", "code"),
    [
        ("Водоснабжение", "housing"),
        ("Центральное отопление", "housing"),
        (
            "Незаконная реализация товаров с торгового оборудования (прилавок, ящик, с земли)",
            "trade",
        ),
    ],
)
def test_categories_of_real_appeals(
    model: TopicModel, appeals: list[dict[str, str]], category: str, code: str
) -> None:
    texts = [a["text"] for a in appeals if a["category"] == category]
    assert len(texts) >= 5
    right = sum(model.best(learned.features(t)) == code for t in texts)
    assert right / len(texts) >= 0.8


def test_probabilities_sum_to_one(model: TopicModel) -> None:
    probs = model.probabilities(learned.features("Во дворе горы мусора, контейнеры переполнены"))
    assert set(probs) == set(model.codes)
    assert abs(sum(probs.values()) - 1) < 1e-6
    assert max(probs, key=probs.__getitem__) in ("waste", "landscaping")
    assert model.probabilities([]) == model.probabilities(["неизвестноеслово"])


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Всё изрисовано, закрасьте!", "landscaping"),  # ("исписано": a routing term)
        ("Который день течёт, всё залило, помогите!", "housing"),
    ],
)
def test_the_model_names_the_topic_the_lexicons_miss(text: str, code: str) -> None:
    rules_only = Flagger(model=None).flag(text)
    assert rules_only.topics == ["other"] and rules_only.is_complaint
    flags = flagger().flag(text)
    assert flags.topic_source == "model" and flags.topics[0] == code
    assert flags.topic_scores[code] >= 0.5
    assert list(flags.topic_scores.values()) == sorted(flags.topic_scores.values(), reverse=True)


def test_the_rules_come_first_and_non_complaints_are_left_alone() -> None:
    rules = flagger()
    ruled = rules.flag("Во дворе не вывозят мусор, контейнеры переполнены!")
    assert ruled.topic_source == "rules" and ruled.topics[0] == "waste"
    greeting = rules.flag("Добрый вечер всем!")
    assert greeting.topics == ["other"] and greeting.topic_source == "rules"
    answer = rules.flag("Который день течёт, всё залило, помогите!", official_author=True)
    assert answer.topics == ["other"]


def test_the_setting_chooses_how_the_model_is_used() -> None:
    from crawler.model import Post

    def flagged(settings: FlaggingSettings, text: str) -> Post:
        return stage(settings)([Post(platform="vk", native_id="1", text=text)])[0]

    mute = "Всё изрисовано, закрасьте!"  # no lexicon topic
    assert flagged(FlaggingSettings(), mute).topics == ["landscaping"]
    assert flagged(FlaggingSettings(topic_model="blend"), mute).topics == ["landscaping"]
    assert flagged(FlaggingSettings(topic_model="off"), mute).topics == ["other"]
    ruled = "Во дворе не вывозят мусор, контейнеры переполнены!"
    rules_only = flagged(FlaggingSettings(), ruled)
    assert (
        rules_only.topic_scores == flagged(FlaggingSettings(topic_model="off"), ruled).topic_scores
    )
    blended = flagged(FlaggingSettings(topic_model="blend"), ruled)
    assert blended.topics[0] == "waste" and blended.topic_scores != rules_only.topic_scores
    assert abs(sum(blended.topic_scores.values()) - 1) < 0.01 and "other" in blended.topic_scores
    with pytest.raises(ValidationError):
        FlaggingSettings(topic_model="always")


def test_codes_the_model_never_saw_stay_the_rules() -> None:
    text = "Во дворе каждую ночь драки и пьяные, полиция не приезжает!"
    flags = flagger(topic_model="blend").flag(text)
    assert flags.topics[0] == "safety" and flags.topic_source == "rules"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = TopicModel(
        vocabulary=["яма", "снег", "яма снег"],
        codes=["landscaping", "roads"],
        coef=np.array([[0.0, 2.0], [1.5, 0.0], [0.25, 0.25]], dtype=np.float32),
        intercept=np.array([0.1, -0.1], dtype=np.float32),
    )
    model.save(tmp_path, {"note": "made up"})
    again = TopicModel.load(tmp_path)
    assert again.vocabulary == model.vocabulary and again.codes == model.codes
    assert np.allclose(again.coef, model.coef, atol=1e-3) and again.meta == {"note": "made up"}
    assert again.best(["яма"]) == "roads" and again.best(["снег"]) == "landscaping"


def test_training_is_deterministic(appeals: list[dict[str, str]]) -> None:
    pytest.importorskip("sklearn")
    from bench.train_flagging import fit

    texts = [learned.features(a["text"]) for a in appeals[:800]]
    labels = [code_of(a["category"], a["reason"]) for a in appeals[:800]]
    first, second = fit(texts, labels), fit(texts, labels)
    assert first.vocabulary == second.vocabulary and first.codes == second.codes
    assert np.array_equal(first.coef, second.coef)


def test_the_check_allows_float16_rounding_and_nothing_more(model: TopicModel) -> None:
    """``train_flagging.py --check``: a refit that rounds to the shipped float16 weights is
    the same model; one weight a hundredth off, or another vocabulary, is not."""
    step = np.spacing(np.abs(model.coef).astype(np.float16)).astype(np.float32)
    signs = np.where(np.arange(model.coef.size) % 2, 1, -1).reshape(model.coef.shape)
    refit = replace(model, coef=model.coef + 0.4 * step * signs)  # within every rounding
    assert weight_gap(model, refit) <= TOLERANCE
    refit.coef[7, 2] += 0.01
    assert weight_gap(model, refit) > TOLERANCE
    other = replace(model, vocabulary=[*model.vocabulary[:-1], "неизвестное"])
    assert weight_gap(model, other) == float("inf")


def test_signal_weights_must_name_known_signals(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text("complaint:\n  signal_weights: {mood: 1.0}\n", encoding="utf-8")
    with pytest.raises(LexiconError, match="unknown signal 'mood'"):
        Flagger([path])


def test_signal_weights_from_an_override_change_the_score(tmp_path: Path) -> None:
    text = "А у нас во дворе опять?"
    path = tmp_path / "local.yaml"
    path.write_text("complaint:\n  signal_weights: {we: 0, question: 0}\n", encoding="utf-8")
    assert Flagger([path]).flag(text).complaint_score < Flagger().flag(text).complaint_score


def test_topic_model_posts_names_the_topic_of_posts_where_it_is_sure() -> None:
    """``topic_model: posts``: the model's topic for complaint posts where it is 50 % sure
    (the portal files litter in a yard under landscaping, as its appeals taught the model);
    comments and unsure texts keep the lexicons' topics."""
    text = "не убраны мешки с мусором"
    assert flagger().flag(text).topics == ["waste"]
    posts = flagger(topic_model="posts")
    post = posts.flag(text)
    assert post.topics[0] == "landscaping" and post.topic_source == "model"
    assert post.topic_scores["landscaping"] >= 0.5
    assert posts.flag(text, reply=True).topics == ["waste"]
    greeting = posts.flag("Добрый вечер всем!")
    assert greeting.topics == ["other"] and greeting.topic_source == "rules"
    assert FlaggingSettings(topic_model="posts").topic_model == "posts"
