"""The shipped topic model: loads, predicts real appeals, is asked only when the rules are mute."""

from __future__ import annotations

import gzip
import hashlib
import json
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


def with_(model: TopicModel, **changes: object) -> TopicModel:
    """A copy of ``model`` with some of its arrays or lists changed."""
    fields = {k: getattr(model, k) for k in ("vocabulary", "codes", "coef", "intercept")}
    return TopicModel(**{**fields, **changes})  # type: ignore[arg-type]


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
    flags = flagger(topic_model="fallback").flag(text)
    assert flags.topic_source == "model" and flags.topics[0] == code
    assert flags.topic_scores[code] >= 0.5
    assert list(flags.topic_scores.values()) == sorted(flags.topic_scores.values(), reverse=True)


def test_the_rules_come_first_and_non_complaints_are_left_alone() -> None:
    rules = flagger(topic_model="fallback")
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
    rules_only = flagged(FlaggingSettings(topic_model="fallback"), ruled)
    assert (
        rules_only.topic_scores == flagged(FlaggingSettings(topic_model="off"), ruled).topic_scores
    )
    blended = flagged(FlaggingSettings(topic_model="blend"), ruled)
    assert blended.topics[0] == "waste" and blended.topic_scores != rules_only.topic_scores
    assert abs(sum(blended.topic_scores.values()) - 1) < 0.01 and "other" in blended.topic_scores
    with pytest.raises(ValidationError):
        FlaggingSettings(topic_model="always")


# Terse posts in a city portal's way (written for these tests, in the shape of the real ones).
PORTAL_STYLE = [
    ("Неочищенная урна у входа в подземный переход.", "waste"),
    ("Не убраны мешки с мусором у дома 12.", "landscaping"),
    ("Реклама на фонарном столбе, просьба демонтировать.", "landscaping"),
    ("Листва на газоне не убрана.", "landscaping"),
    ("Протечка кровли над 5 этажом, требуется ремонт.", "housing"),
]


def test_auto_lets_the_model_name_the_topic_of_portal_style_posts() -> None:
    """``topic_model: auto`` (the default): residents' posts the style model reads as portal
    appeals get the appeals' model's topic (the portal files bags of litter in a yard under
    landscaping); the same texts as comments, news items or official posts keep the
    lexicons'; so do giveaway posts, which read like terse appeals but name no problem."""
    auto, fallback = flagger(), flagger(topic_model="fallback")
    assert FlaggingSettings().topic_model == "auto"
    assert auto.style is not None
    for text, code in PORTAL_STYLE:
        flags = auto.flag(text)
        assert flags.topic_source == "portal" and flags.topics[0] == code, text
        assert flags.topic_scores[code] >= 0.5
        for kept in (
            auto.flag(text, editorial=True),
            auto.flag(text, official_author=True),
            flagger(comments=False).flag(text, reply=True),
        ):
            assert kept.topic_source != "portal", text
    assert fallback.flag("Не убраны мешки с мусором у дома 12.").topics[0] == "waste"
    for giveaway in ("Отдам кресло.", "Отдам детские вещи, состояние разное", "Продам коляску"):
        flags = auto.flag(giveaway)
        assert flags.topics == ["other"] and not flags.is_complaint, giveaway


def test_auto_leaves_most_residents_social_media_posts_to_the_lexicons() -> None:
    """Posts in the way residents write in VK are mostly not portal style: the lexicons name
    their topics, as with ``fallback``; one that reads like an appeal gets the same topic."""
    auto, fallback = flagger(), flagger(topic_model="fallback")
    texts = (
        "Ребят, кто знает, когда уже во дворе на Ленина 5 фонари починят?? Темно как в жопе",
        "Опять на Садовой прорвало трубу, вода хлещет третий день, администрации пофиг",
        "Народ, у кого тоже нет горячей воды на Мира? Уже неделю моемся из тазика",
        "Сколько можно терпеть эти ямы на Гагарина, подвеску убил вчера(((",
        "Управляйка совсем обнаглела, в подъезде не убирают месяц, лифт стоит!!!",
    )
    flags = [auto.flag(text) for text in texts]
    assert [f.topic_source for f in flags[:4]] == ["rules"] * 4
    assert flags[4].topic_source == "portal"
    assert [f.topics for f in flags] == [fallback.flag(text).topics for text in texts]


def test_the_style_model_must_share_the_topic_models_vocabulary(model: TopicModel) -> None:
    style = learned.shipped_style()
    assert style is not None and style.codes == ["social", "portal"]
    assert style.vocabulary == model.vocabulary
    with pytest.raises(ValueError, match="make train"):
        Flagger(model=with_(model, vocabulary=[*model.vocabulary[:-1], "новое"]), style=style)


def test_the_style_model_tells_appeals_from_vk_comments_it_never_saw(
    appeals: list[dict[str, str]],
) -> None:
    """Real texts: the appeals (in-sample, as is the topic model: held-out districts are in
    make train's figures) and the VK comments of the evaluation set, never trained on."""
    import csv

    def portal(texts: list[str]) -> float:
        return sum(flagger().reads_as_portal(texts)) / len(texts)

    with shared("vk/vk_comments_spb_central.csv").open(encoding="utf-8", newline="") as fh:
        texts = {r["comment_id"]: r["text"] for r in csv.DictReader(fh)}
    labels = Path(__file__).parent / "data" / "vk_comment_labels.csv"
    with labels.open(encoding="utf-8", newline="") as fh:
        unseen = [texts[r["comment_id"]] for r in csv.DictReader(fh)]
    assert portal([a["text"] for a in appeals]) > 0.9
    assert portal(unseen) < 0.1  # 33 of 525 (6 %) when it was trained
    held = learned.shipped().meta["held_out_districts"]["all"]  # type: ignore[union-attr]
    assert held["auto"] >= 0.9 and held["auto"] > held["fallback"] + 0.1


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
    refit = with_(model, coef=model.coef + 0.4 * step * signs)  # within every rounding
    assert weight_gap(model, refit) <= TOLERANCE
    refit.coef[7, 2] += 0.01
    assert weight_gap(model, refit) > TOLERANCE
    other = with_(model, vocabulary=[*model.vocabulary[:-1], "неизвестное"])
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
    assert flagger(topic_model="fallback").flag(text).topics == ["waste"]
    posts = flagger(topic_model="posts")
    post = posts.flag(text)
    assert post.topics[0] == "landscaping" and post.topic_source == "model"
    assert post.topic_scores["landscaping"] >= 0.5
    assert posts.flag(text, reply=True).topics == ["waste"]
    greeting = posts.flag("Добрый вечер всем!")
    assert greeting.topics == ["other"] and greeting.topic_source == "rules"
    assert FlaggingSettings(topic_model="posts").topic_model == "posts"
